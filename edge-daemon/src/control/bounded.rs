//! An HTTP/1.1 server that no client can exhaust: the control socket and
//! the metrics endpoint both run on it.
//!
//! - At most [`Limits::connections`] connections at once. A new one beyond
//!   that evicts the oldest connection that has not finished sending its
//!   request head (a half-sent request), so a flood of idle clients never
//!   locks out `edgectl`; if every connection is busy, the new one is
//!   closed at once.
//! - A request head must arrive within [`Limits::head`], and a whole
//!   exchange ends within [`Limits::exchange`].
//! - A request with a body larger than [`Limits::body`] is refused (413).
//! - One request per connection.
//!
//! So edged's descriptors for clients are bounded by the cap, far below
//! its limit, and health checks always find descriptors.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::AbortHandle;
use tower::ServiceExt;

/// What one server admits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once.
    pub connections: usize,
    /// Time to receive a request head.
    pub head: Duration,
    /// Time for a whole exchange.
    pub exchange: Duration,
    /// Largest request body.
    pub body: u64,
}

impl Limits {
    /// The control socket's.
    pub const CONTROL: Limits = Limits {
        connections: 64,
        head: Duration::from_secs(5),
        exchange: Duration::from_secs(15),
        body: 4096,
    };
    /// The metrics endpoint's.
    pub const METRICS: Limits = Limits {
        connections: 16,
        head: Duration::from_secs(5),
        exchange: Duration::from_secs(15),
        body: 0,
    };
}

/// A listener the server accepts from.
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// One live connection: whether its request head is in, and its task.
struct Live {
    head_done: Arc<AtomicBool>,
    task: AbortHandle,
}

/// Requests being answered (their head is in, their answer not yet
/// written): what a stopping daemon waits for, so that the reply to
/// `edgectl stop` reaches the client before the process exits.
#[derive(Clone, Debug, Default)]
pub struct Answering(Arc<std::sync::atomic::AtomicUsize>);

impl Answering {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until no request is being answered, at most `max`.
    pub async fn drained(&self, max: Duration) {
        let end = tokio::time::Instant::now() + max;
        while self.count() > 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Serves `app` on `listener` within `limits` until the listener fails;
/// `answering` counts the requests in progress.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    limits: Limits,
    answering: Answering,
) -> std::io::Result<()> {
    let mut live: VecDeque<Live> = VecDeque::new();
    loop {
        let io = match listener.accept().await {
            Ok(io) => io,
            // Out of descriptors or memory for a moment: the cap keeps us
            // far from the limit, so this is someone else's; wait and go on.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                tracing::warn!(error = %e, "cannot accept a client now");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        };
        live.retain(|l| !l.task.is_finished());
        if live.len() >= limits.connections {
            match live
                .iter()
                .position(|l| !l.head_done.load(Ordering::Relaxed))
            {
                Some(i) => {
                    if let Some(old) = live.remove(i) {
                        old.task.abort();
                    }
                }
                None => {
                    drop(io); // every connection is being answered: refuse
                    continue;
                }
            }
        }
        let head_done = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(connection(
            io,
            app.clone(),
            limits,
            head_done.clone(),
            answering.clone(),
        ));
        live.push_back(Live {
            head_done,
            task: task.abort_handle(),
        });
    }
}

async fn connection<I>(
    io: I,
    app: Router,
    limits: Limits,
    head_done: Arc<AtomicBool>,
    answering: Answering,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Counted from the head until the connection is done (one request per
    // connection: no keep-alive), also when the task is aborted.
    struct Done(Answering, Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            if self.1.load(Ordering::Relaxed) {
                self.0.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    let _done = Done(answering.clone(), head_done.clone());
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        if !head_done.swap(true, Ordering::Relaxed) {
            answering.0.fetch_add(1, Ordering::AcqRel);
        }
        let app = app.clone();
        async move {
            let too_big = req
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n > limits.body);
            if too_big {
                let mut r = Response::new(Body::from("request body too large\n"));
                *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                return Ok::<_, std::convert::Infallible>(r);
            }
            let req = req.map(Body::new);
            Ok(app.oneshot(req).await.unwrap_or_else(|e| match e {}))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .keep_alive(false)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    let _ = tokio::time::timeout(limits.exchange, conn).await;
}
