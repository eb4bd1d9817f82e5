//! Test servers on loopback that misbehave on demand.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use edged_health::CheckKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How the HTTP test server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Status500,
    WrongBody,
    Hang,
    CloseMidResponse,
    Garbage,
    Reset,
    Slow,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(Mode::Ok as u8));
        let m = mode.clone();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mode = m.load(Ordering::SeqCst);
                tokio::spawn(serve(s, mode));
            }
        });
        HttpServer {
            addr,
            accepted,
            mode,
            task,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Stops listening: connections are refused.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await; // the listener is closed once this returns
    }
}

async fn serve(mut s: TcpStream, mode: u8) {
    let mut buf = [0u8; 2048];
    let _ = s.read(&mut buf).await;
    let reply: &[u8] = match mode {
        m if m == Mode::Ok as u8 => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
        m if m == Mode::Status500 as u8 => {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
        }
        m if m == Mode::WrongBody as u8 => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nmaintenance\n"
        }
        m if m == Mode::Hang as u8 => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        m if m == Mode::CloseMidResponse as u8 => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok"
        }
        m if m == Mode::Garbage as u8 => b"\x00\x01garbage that is not http\r\n\r\n",
        m if m == Mode::Reset as u8 => {
            // An RST instead of a FIN: linger 0 on the std socket, then close.
            if let Ok(std) = s.into_std() {
                let _ = socket_linger_zero(&std);
            }
            return;
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
        }
    };
    let _ = s.write_all(reply).await;
    let _ = s.shutdown().await;
}

/// A DNS responder answering every query with `rcode`, or nothing when
/// `rcode` is 255.
pub struct DnsServer {
    pub addr: SocketAddr,
    rcode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let rcode = Arc::new(AtomicU8::new(0));
        let rc = rcode.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let code = rc.load(Ordering::SeqCst);
                if code == 255 || n < 12 {
                    continue;
                }
                let mut resp = buf[..n].to_vec();
                resp[2] |= 0x80;
                resp[3] = (resp[3] & 0xf0) | code;
                let _ = sock.send_to(&resp, peer).await;
            }
        });
        DnsServer { addr, rcode, task }
    }

    pub fn set_rcode(&self, rc: u8) {
        self.rcode.store(rc, Ordering::SeqCst);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// SO_LINGER 0 (an RST on close), through nix on the raw socket.
fn socket_linger_zero(s: &std::net::TcpStream) -> nix::Result<()> {
    let l = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &l)
}

/// The checker's next state change, within 10 s.
pub async fn flip(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<edged_health::HealthEvent>,
) -> edged_health::HealthEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no state change within 10 s")
        .expect("the checker is gone")
}

/// A GET / expecting 200 and "ok", over HTTP/1.1 or HTTP/2.
pub fn http_kind(target: SocketAddr, http2: bool) -> CheckKind {
    let h = edged_health::HttpCheck::get(target).body("ok");
    if http2 { h.http2() } else { h }.into()
}

/// A spec of one attempt of `kind` within `timeout` (the interval, which
/// one attempt never reaches, is four timeouts).
pub fn spec_of(kind: impl Into<CheckKind>, timeout: Duration) -> edged_health::CheckSpec {
    edged_health::CheckSpec::new(kind, timeout * 4, timeout)
}
