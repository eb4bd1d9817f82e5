//! Real servers inside proxy namespaces: an HTTP/1.1 server (keep-alive)
//! and a UDP responder, both answering with the proxy's name. Sockets are
//! created on a thread inside the namespace and served from plain threads.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Netns;

/// Stops the servers and closes their connections on drop.
pub struct Servers {
    stop: Arc<AtomicBool>,
    listener: TcpListener,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    pub fn start(ns: &Netns, name: &str, vip: &str, http_port: u16, udp_port: u16) -> Servers {
        let (listener, udp) = ns.run(|| {
            let l = TcpListener::bind((vip, http_port)).expect("bind http");
            let u = UdpSocket::bind((vip, udp_port)).expect("bind udp");
            (l, u)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        let l = listener.try_clone().unwrap();
        let (n, c) = (name.to_string(), conns.clone());
        threads.push(std::thread::spawn(move || {
            // accept() fails once the guard shuts the listener down.
            while let Ok((s, _)) = l.accept() {
                c.lock().unwrap().push(s.try_clone().unwrap());
                let n = n.clone();
                std::thread::spawn(move || serve_http(s, &n));
            }
        }));
        let (n, st) = (name.to_string(), stop.clone());
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(n.as_bytes(), peer);
                }
            }
        }));
        Servers {
            stop,
            listener,
            conns,
            threads,
        }
    }
}

fn serve_http(mut s: TcpStream, name: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{name}",
                name.len()
            );
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: shutting down our own listening socket wakes accept().
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        for c in self.conns.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One HTTP request on `s`; returns the body (the proxy's name).
pub fn http_get(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        .expect("send request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("content-length")
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
            }
        }
        let n = s.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A new connection (call inside the client namespace) and one request.
pub fn http_once(vip: &str, port: u16) -> String {
    let addr = format!("{vip}:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    http_get(&mut s)
}

/// One UDP query from `sport` (call inside the client namespace).
pub fn udp_once(src: &str, sport: u16, vip: &str, port: u16) -> String {
    let u = UdpSocket::bind((src, sport)).expect("bind client port");
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    u.send_to(b"q", (vip, port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = u.recv_from(&mut buf).expect("udp answer");
    String::from_utf8_lossy(&buf[..n]).to_string()
}
