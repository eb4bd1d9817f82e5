//! TCP connect, from a chosen source address if configured.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::outcome::Failure;

/// Connects to `target`; the connection is closed at once.
pub(crate) async fn check(target: SocketAddr, source: Option<IpAddr>) -> Result<(), Failure> {
    connect(target, source).await.map(drop)
}

/// A connected stream, bound to `source` when given.
pub(crate) async fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<TcpStream, Failure> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| Failure::io(&e))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| Failure::Other(format!("bind {src}: {}", Failure::io(&e))))?;
    }
    socket.connect(target).await.map_err(|e| Failure::io(&e))
}
