//! Control socket server (axum over a Unix listener).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::proto::ErrorReply;

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
    Reload,
    /// A runtime weight for a proxy (`None`: back to the config's).
    Weight(String, Option<u32>),
}

/// An error for the client, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

/// A query and where to send the answer.
pub type Request = (Query, oneshot::Sender<Result<serde_json::Value, ApiError>>);

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

/// Serves the API until the daemon loop goes away.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Request>) -> std::io::Result<()> {
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
        .route("/v1/reload", post(|s| ask(s, Query::Reload)))
        .route(
            "/v1/proxies/{proxy}/weight/{weight}",
            post(|s, UrlPath((p, w)): UrlPath<(String, u32)>| ask(s, Query::Weight(p, Some(w)))),
        )
        .route(
            "/v1/proxies/{proxy}/weight-reset",
            post(|s, UrlPath(p): UrlPath<String>| ask(s, Query::Weight(p, None))),
        )
        .with_state(tx);
    axum::serve(listener, app).await
}

async fn ask(State(tx): State<mpsc::Sender<Request>>, q: Query) -> Response {
    let (reply_tx, reply_rx) = oneshot::channel();
    let unavailable = || error(503, "edged is shutting down".into());
    if tx.send((q, reply_tx)).await.is_err() {
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
