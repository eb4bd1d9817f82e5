//! Control socket client, used by `edgectl` and the tests.

use std::path::Path;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::proto::ErrorReply;

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "cannot connect to {path}: {source} (is edged running? is node.control_socket this path?)"
    )]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    /// The socket exists but we may not use it.
    #[error("permission denied on {path}: run as root or as a member of node.control_group")]
    Denied { path: String },
    /// The daemon answered with an error.
    #[error("{message}")]
    Daemon { status: u16, message: String },
    /// The exchange broke.
    #[error("control protocol error: {0}")]
    Protocol(String),
}

/// How long a call may take (a reload waits for BIRD's check, bounded).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends one request and returns the JSON body of a 2xx answer.
pub async fn call(
    socket: &Path,
    method: &str,
    path: &str,
) -> Result<serde_json::Value, ClientError> {
    call_with_body(socket, method, path, Vec::new()).await
}

/// As [`call`], with a request body.
pub async fn call_with_body(
    socket: &Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, ClientError> {
    match tokio::time::timeout(CALL_TIMEOUT, exchange(socket, method, path, body)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Protocol(format!(
            "edged did not answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

async fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, ClientError> {
    let shown = socket.display().to_string();
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => ClientError::Denied {
                path: shown.clone(),
            },
            _ => ClientError::NotRunning {
                path: shown.clone(),
                source,
            },
        })?;
    let proto = |e: &dyn std::fmt::Display| ClientError::Protocol(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| proto(&e))?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "edged")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| proto(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| proto(&e))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| proto(&e))?
        .to_bytes();
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|e| proto(&e));
    }
    let message = serde_json::from_slice::<ErrorReply>(&body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(ClientError::Daemon { status, message })
}
