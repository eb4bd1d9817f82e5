//! Long-lived keep-alive connections, as users hold them: each sends a
//! request every `period` on the same connection and records every reset,
//! unexpected end, stall and change of the proxy that answers. What a
//! planned change must not do is visible here, and not in short requests.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::traffic::in_netns;

/// What the connections saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnTally {
    /// Connections opened (first ones and re-opened after a failure).
    pub opened: usize,
    /// Requests answered.
    pub ok: usize,
    /// Connections reset (ECONNRESET, EPIPE) by whoever got the packet.
    pub resets: usize,
    /// Connections that ended without a `Connection: close`.
    pub eofs: usize,
    /// Requests that got no answer within the timeout.
    pub stalls: usize,
    /// Connections that could not be opened, or answers that were not 200.
    pub errors: Vec<String>,
    /// Connections whose answering proxy changed (a moved flow).
    pub moved: usize,
    /// Answers per proxy identity.
    pub by_proxy: BTreeMap<String, usize>,
    /// Connections that failed (reset, ended, stalled, errors), by the
    /// proxy that answered them last ("" for one that never answered: a
    /// connection opened again after a failure).
    pub broken_by_proxy: BTreeMap<String, usize>,
}

impl ConnTally {
    /// Every way a connection can fail, summed.
    pub fn broken(&self) -> usize {
        self.resets + self.eofs + self.stalls + self.errors.len() + self.moved
    }

    fn add(&mut self, o: ConnTally) {
        self.opened += o.opened;
        self.ok += o.ok;
        self.resets += o.resets;
        self.eofs += o.eofs;
        self.stalls += o.stalls;
        self.errors.extend(o.errors);
        self.moved += o.moved;
        for (k, v) in o.by_proxy {
            *self.by_proxy.entry(k).or_default() += v;
        }
        for (k, v) in o.broken_by_proxy {
            *self.broken_by_proxy.entry(k).or_default() += v;
        }
    }
}

impl std::fmt::Display for ConnTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {} answers, {} resets, {} unexpected ends, {} stalls, {} moved, {} errors",
            self.opened,
            self.ok,
            self.resets,
            self.eofs,
            self.stalls,
            self.moved,
            self.errors.len()
        )
    }
}

/// One keep-alive connection.
struct Conn {
    src: IpAddr,
    stream: Option<TcpStream>,
    proxy: Option<String>,
}

enum Failure {
    Reset,
    Eof,
    Stall,
    Error(String),
}

fn open(src: IpAddr, dst: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    super::traffic::connect_from(src, dst, timeout)
}

fn classify(e: std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            Failure::Reset
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::Stall,
        ErrorKind::UnexpectedEof => Failure::Eof,
        _ => Failure::Error(e.to_string()),
    }
}

/// One request on a kept connection: (identity, whether the server asked
/// to close).
fn request(s: &mut TcpStream) -> Result<(String, bool), Failure> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        .map_err(classify)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let head_end = loop {
        let n = s.read(&mut chunk).map_err(classify)?;
        if n == 0 {
            return Err(Failure::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(Failure::Error("answer head too long".into()));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        let line = head.lines().next().unwrap_or("").to_string();
        return Err(Failure::Error(format!("bad answer: {line}")));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Failure::Error("no content-length".into()))?;
    let close = head.lines().any(|l| l.starts_with("connection: close"));
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).map_err(classify)?;
        if n == 0 {
            return Err(Failure::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len])
        .trim()
        .to_string();
    Ok((body, close))
}

/// Keep-alive connections to one VIP from the client namespace, spread
/// over a few threads, each sending a request on each of its connections
/// every `period`.
pub struct Conns {
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<ConnTally>>,
}

impl Conns {
    /// Opens `count` connections (cycling over `sources`) to `dst`.
    pub fn start(
        ns_path: &Path,
        sources: &[IpAddr],
        dst: SocketAddr,
        count: usize,
        period: Duration,
    ) -> Conns {
        Conns::start_many(ns_path, &[(sources, dst, count)], period)
    }

    /// Opens, for each `(sources, dst, count)`, `count` connections
    /// (cycling over `sources`) to `dst` (IPv4 and IPv6 VIPs at once).
    pub fn start_many(
        ns_path: &Path,
        groups: &[(&[IpAddr], SocketAddr, usize)],
        period: Duration,
    ) -> Conns {
        const PER_THREAD: usize = 50;
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (sources, dst, count) in groups {
            let dst = *dst;
            let all: Vec<IpAddr> = (0..*count).map(|i| sources[i % sources.len()]).collect();
            for mine in all.chunks(PER_THREAD) {
                let (mine, path) = (mine.to_vec(), ns_path.to_owned());
                let (stop, answers) = (stop.clone(), answers.clone());
                threads.push(std::thread::spawn(move || {
                    in_netns(&path, move || run(mine, dst, period, &stop, &answers))
                }));
            }
        }
        Conns {
            stop,
            answers,
            threads,
        }
    }

    /// Answers received so far (every connection answers once a period).
    pub fn answers(&self) -> usize {
        self.answers.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `n` more answers came in than now: every
    /// connection has made progress.
    pub fn wait_answers(&self, n: usize, timeout: Duration) -> bool {
        let start = self.answers();
        crate::poll_until(timeout, || self.answers() >= start + n)
    }

    /// Stops and sums what every connection saw.
    pub fn stop(self) -> ConnTally {
        self.stop.store(true, Ordering::Relaxed);
        let mut t = ConnTally::default();
        for th in self.threads {
            t.add(th.join().expect("connection thread"));
        }
        t
    }
}

fn run(
    sources: Vec<IpAddr>,
    dst: SocketAddr,
    period: Duration,
    stop: &AtomicBool,
    answers: &AtomicUsize,
) -> ConnTally {
    let timeout = Duration::from_secs(2);
    let mut t = ConnTally::default();
    let mut conns: Vec<Conn> = sources
        .into_iter()
        .map(|src| Conn {
            src,
            stream: None,
            proxy: None,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let sweep = Instant::now();
        for c in conns.iter_mut() {
            if c.stream.is_none() {
                match open(c.src, dst, timeout) {
                    Ok(s) => {
                        t.opened += 1;
                        c.stream = Some(s);
                    }
                    Err(e) => {
                        t.errors.push(e);
                        continue;
                    }
                }
            }
            let s = c.stream.as_mut().expect("opened above");
            match request(s) {
                Ok((who, close)) => {
                    t.ok += 1;
                    answers.fetch_add(1, Ordering::Relaxed);
                    if c.proxy.as_ref().is_some_and(|p| *p != who) {
                        t.moved += 1;
                    }
                    *t.by_proxy.entry(who.clone()).or_default() += 1;
                    c.proxy = Some(who);
                    if close {
                        c.stream = None;
                        c.proxy = None;
                    }
                }
                Err(f) => {
                    let last = c.proxy.clone().unwrap_or_default();
                    *t.broken_by_proxy.entry(last).or_default() += 1;
                    match f {
                        Failure::Reset => t.resets += 1,
                        Failure::Eof => t.eofs += 1,
                        Failure::Stall => t.stalls += 1,
                        Failure::Error(e) => t.errors.push(e),
                    }
                    c.stream = None;
                    c.proxy = None;
                }
            }
        }
        if let Some(rest) = period.checked_sub(sweep.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    t
}
