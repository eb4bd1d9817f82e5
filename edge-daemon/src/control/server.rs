//! Control socket server: axum routes on the [bounded](super::bounded)
//! server over a Unix listener.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::bounded::{self, Limits};
use super::proto::{ErrorReply, StopMode};

/// What the daemon loop is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Status,
    Vips,
    Proxies,
    Peers,
    Drain(String),
    Undrain(String),
    Maintenance(bool),
    /// Re-read the config file; with `dry_run`, only say what would change.
    Reload {
        dry_run: bool,
    },
    /// What this config text would change on the running node.
    Diff(String),
    /// A runtime weight for a proxy (`None`: back to the config's).
    Weight(String, Option<u32>),
    /// Stop edged.
    Stop(StopMode),
}

/// An error for the client, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

/// A query and where to send the answer.
pub type Request = (Query, oneshot::Sender<Result<serde_json::Value, ApiError>>);

/// Largest config text `POST /v1/diff` takes (the config file's bound).
const MAX_DIFF_BODY: usize = edged_config::MAX_CONFIG_BYTES as usize;

/// Binds the control socket: removes a stale socket file (refusing if a
/// live daemon answers on it), then sets mode 0660 and the group.
pub async fn bind(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    use anyhow::Context;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!("{} is in use: is another edged running?", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(name) = group {
        let g = nix::unistd::Group::from_name(name)?
            .with_context(|| format!("node.control_group: no group `{name}`"))?;
        nix::unistd::chown(path, None, Some(g.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(listener)
}

#[derive(Clone)]
struct Ctx {
    tx: mpsc::Sender<Request>,
    /// One config text at a time is diffed (each may be 64 MiB).
    diffs: Arc<Semaphore>,
}

#[derive(Deserialize)]
struct ReloadParams {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
struct StopParams {
    #[serde(default)]
    mode: StopMode,
}

/// Serves the API until the daemon loop goes away.
pub async fn serve(
    listener: UnixListener,
    tx: mpsc::Sender<Request>,
    answering: bounded::Answering,
) -> std::io::Result<()> {
    let ctx = Ctx {
        tx,
        diffs: Arc::new(Semaphore::new(1)),
    };
    let app = Router::new()
        .route("/v1/status", get(|s| ask(s, Query::Status)))
        .route("/v1/vips", get(|s| ask(s, Query::Vips)))
        .route("/v1/proxies", get(|s| ask(s, Query::Proxies)))
        .route("/v1/peers", get(|s| ask(s, Query::Peers)))
        .route(
            "/v1/vips/{vip}/drain",
            post(|s, UrlPath(v): UrlPath<String>| ask(s, Query::Drain(v))),
        )
        .route(
            "/v1/vips/{vip}/undrain",
            post(|s, UrlPath(v): UrlPath<String>| ask(s, Query::Undrain(v))),
        )
        .route(
            "/v1/maintenance/on",
            post(|s| ask(s, Query::Maintenance(true))),
        )
        .route(
            "/v1/maintenance/off",
            post(|s| ask(s, Query::Maintenance(false))),
        )
        .route(
            "/v1/reload",
            post(|s, UrlQuery(p): UrlQuery<ReloadParams>| {
                ask(s, Query::Reload { dry_run: p.dry_run })
            }),
        )
        .route("/v1/diff", post(diff))
        .route(
            "/v1/stop",
            post(|s, UrlQuery(p): UrlQuery<StopParams>| ask(s, Query::Stop(p.mode))),
        )
        .route(
            "/v1/proxies/{proxy}/weight/{weight}",
            post(|s, UrlPath((p, w)): UrlPath<(String, u32)>| ask(s, Query::Weight(p, Some(w)))),
        )
        .route(
            "/v1/proxies/{proxy}/weight-reset",
            post(|s, UrlPath(p): UrlPath<String>| ask(s, Query::Weight(p, None))),
        )
        .with_state(ctx);
    let limits = Limits {
        body: MAX_DIFF_BODY as u64,
        ..Limits::CONTROL
    };
    bounded::serve(listener, app, limits, answering).await
}

async fn diff(State(ctx): State<Ctx>, body: axum::body::Body) -> Response {
    let Ok(_one) = ctx.diffs.clone().try_acquire_owned() else {
        return error(429, "another diff is running; try again".into());
    };
    let bytes = match axum::body::to_bytes(body, MAX_DIFF_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                413,
                format!("config text larger than {MAX_DIFF_BODY} bytes"),
            );
        }
    };
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => ask(State(ctx), Query::Diff(text)).await,
        Err(_) => error(400, "the config text is not UTF-8".into()),
    }
}

async fn ask(State(ctx): State<Ctx>, q: Query) -> Response {
    let (reply_tx, reply_rx) = oneshot::channel();
    let unavailable = || error(503, "edged is shutting down".into());
    if ctx.tx.send((q, reply_tx)).await.is_err() {
        return unavailable();
    }
    match reply_rx.await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(e.status, e.message),
        Err(_) => unavailable(),
    }
}

fn error(status: u16, message: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(ErrorReply { error: message })).into_response()
}
