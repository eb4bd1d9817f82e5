//! TCP connect, from a chosen source address if configured.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::io_reason;

/// Connects to `target`; the connection is closed at once.
pub async fn check(target: SocketAddr, source: Option<IpAddr>) -> Result<(), String> {
    connect(target, source).await.map(drop)
}

/// A connected stream, bound to `source` when given.
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| io_reason(&e))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {}", io_reason(&e)))?;
    }
    socket.connect(target).await.map_err(|e| io_reason(&e))
}
