//! Client traffic from inside the client namespace: HTTP requests to a VIP,
//! each from one of many source addresses, counting which proxy answered.
//! Runs on a dedicated thread that entered the namespace (netns is per
//! thread).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

/// What a batch of requests saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answers per proxy identity.
    pub by_proxy: BTreeMap<String, usize>,
    /// Requests that failed (refused, timeout, bad answer), with the reason.
    pub failed: Vec<String>,
    /// When the last failed request started.
    pub last_failed_at: Option<std::time::Instant>,
}

impl Tally {
    /// Requests answered.
    pub fn ok(&self) -> usize {
        self.by_proxy.values().sum()
    }

    /// Counts one request that started `at`.
    fn record(&mut self, at: std::time::Instant, result: Result<String, String>) {
        match result {
            Ok(who) => *self.by_proxy.entry(who).or_default() += 1,
            Err(e) => {
                self.failed.push(e);
                self.last_failed_at = Some(at);
            }
        }
    }
}

/// Runs `f` on a new thread inside the network namespace at `ns_path`.
pub fn in_netns<T: Send + 'static>(ns_path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = ns_path.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// A TCP connection from `src` to `dst`, with send and receive timeouts.
pub fn connect_from(src: IpAddr, dst: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| e.to_string())?;
    let tv = TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(|e| e.to_string())?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| e.to_string())?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(src, 0)),
    )
    .map_err(|e| format!("bind {src}: {e}"))?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(dst)).map_err(|e| format!("connect: {e}"))?;
    Ok(TcpStream::from(fd))
}

/// One HTTP/1.0 GET / from `src` to `dst`; returns the body's first line.
pub fn get(src: IpAddr, dst: SocketAddr, timeout: Duration) -> Result<String, String> {
    get_from(src, dst, timeout).map(|(_, body)| body)
}

/// [`get`], with the connection's own address (its source port).
pub fn get_from(
    src: IpAddr,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<(SocketAddr, String), String> {
    let mut s = connect_from(src, dst, timeout)?;
    let local = s.local_addr().map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .map_err(|e| format!("read: {e}"))?;
    if !resp.starts_with("HTTP/1.1 200") && !resp.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "bad answer: {:?}",
            resp.lines().next().unwrap_or("")
        ));
    }
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((local, body))
}

/// `count` requests to `dst`, cycling over `sources`, from the namespace.
pub fn run(ns_path: &Path, sources: Vec<IpAddr>, dst: SocketAddr, count: usize) -> Tally {
    in_netns(ns_path, move || {
        let mut t = Tally::default();
        for i in 0..count {
            let at = std::time::Instant::now();
            t.record(
                at,
                get(sources[i % sources.len()], dst, Duration::from_secs(1)),
            );
        }
        t
    })
}

/// Continuous load: `workers` client threads, each sending requests back
/// to back from its share of the source addresses, until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    workers: Vec<std::thread::JoinHandle<Tally>>,
}

impl Load {
    /// Starts the workers in the namespace at `ns_path`.
    pub fn start(ns_path: &Path, sources: Vec<IpAddr>, dst: SocketAddr, workers: usize) -> Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = (0..workers.max(1))
            .map(|w| {
                let mine: Vec<IpAddr> = sources
                    .iter()
                    .skip(w)
                    .step_by(workers.max(1))
                    .copied()
                    .collect();
                let (path, stop, done) = (ns_path.to_owned(), stop.clone(), done.clone());
                std::thread::spawn(move || {
                    in_netns(&path, move || {
                        let mut t = Tally::default();
                        let mut i = 0;
                        while !stop.load(Ordering::Relaxed) {
                            let at = std::time::Instant::now();
                            t.record(at, get(mine[i % mine.len()], dst, Duration::from_secs(1)));
                            i += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        t
                    })
                })
            })
            .collect();
        Load {
            stop,
            done,
            workers,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the workers and sums what they saw.
    pub fn stop(self) -> Tally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Tally::default();
        for w in self.workers {
            let t = w.join().expect("load worker");
            for (k, n) in t.by_proxy {
                *all.by_proxy.entry(k).or_default() += n;
            }
            all.failed.extend(t.failed);
            all.last_failed_at = all.last_failed_at.max(t.last_failed_at);
        }
        all
    }
}
