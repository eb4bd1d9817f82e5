//! Test helpers: namespaces with RAII cleanup, running code inside a
//! network namespace on a dedicated thread, pin dirs, crafted frames.
#![allow(dead_code)]

pub mod packet;
pub mod servers;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<prefix><pid>x<n>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// `ip -n NS args...`
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// Runs a command inside the namespace (mount namespace changes don't
    /// matter for these commands).
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// Runs `f` on a thread that entered this network namespace only (same
    /// mount namespace, so bpffs pins are shared).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("open netns");
                use std::os::fd::AsRawFd;
                // SAFETY: setns on this thread only; the fd is valid.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }

    pub fn ifindex(&self, ifname: &str) -> u32 {
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: valid C string.
        self.run(|| unsafe { libc::if_nametoindex(c.as_ptr()) })
    }

    pub fn mac(&self, ifname: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-br", "link", "show", ifname])
            .output()
            .expect("ip");
        let text = String::from_utf8_lossy(&out.stdout);
        let mac = text.split_whitespace().nth(2).expect("mac field");
        let mut m = [0u8; 6];
        for (d, s) in m.iter_mut().zip(mac.split(':')) {
            *d = u8::from_str_radix(s, 16).expect("hex");
        }
        m
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A unique pin dir under /sys/fs/bpf, removed on drop (detaching anything
/// still linked there).
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new() -> PinDir {
        PinDir {
            path: PathBuf::from("/sys/fs/bpf").join(unique("edtest")),
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A veth pair: `a` in `na`, `b` in `nb`, both up.
pub fn veth(na: &Netns, a: &str, nb: &Netns, b: &str) {
    sh(&[
        "ip", "link", "add", a, "netns", &na.name, "type", "veth", "peer", "name", b, "netns",
        &nb.name,
    ]);
    na.ip(&["link", "set", a, "up"]);
    nb.ip(&["link", "set", b, "up"]);
}
