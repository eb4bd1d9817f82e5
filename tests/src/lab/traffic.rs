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
}

impl Tally {
    /// Requests answered.
    pub fn ok(&self) -> usize {
        self.by_proxy.values().sum()
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

/// One HTTP/1.0 GET / from `src` to `dst`; returns the body's first line.
pub fn get(src: IpAddr, dst: SocketAddr, timeout: Duration) -> Result<String, String> {
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
    let mut s = TcpStream::from(fd);
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
    Ok(body)
}

/// `count` requests to `dst`, cycling over `sources`, from the namespace.
pub fn run(ns_path: &Path, sources: Vec<IpAddr>, dst: SocketAddr, count: usize) -> Tally {
    in_netns(ns_path, move || {
        let mut t = Tally::default();
        for i in 0..count {
            match get(sources[i % sources.len()], dst, Duration::from_secs(1)) {
                Ok(who) => *t.by_proxy.entry(who).or_default() += 1,
                Err(e) => t.failed.push(e),
            }
        }
        t
    })
}
