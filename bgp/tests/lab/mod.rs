//! Namespace lab for BGP tests.
//!
//! ```text
//!   netns "<p>n1"                    netns "<p>t" (ToR, AS 65000)
//!   edged BIRD (AS 65001)            BIRD or FRR, kernel table checked
//!   eth0 198.51.100.2/30  ───veth─── e1 198.51.100.1/30
//!        2001:db8:1::2/64                2001:db8:1::1/64
//!   netns "<p>n2"
//!   eth0 198.51.100.6/30  ───veth─── e2 198.51.100.5/30
//!        2001:db8:2::2/64                2001:db8:2::1/64
//! ```
//! Intent: a ToR that treats 65535:0 as a real fabric does (local pref 0) and
//! installs ECMP routes into its kernel table. Everything is removed on drop.

#![allow(dead_code)]

pub mod node;
pub mod tor;

#[allow(unused_imports)]
pub use node::{node_spec, start_lab_node, wait_established};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Run a shell-free command, panic with its stderr on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `cond` every 2 ms until it holds or `timeout` passes; returns the elapsed time.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// RAII guard owning namespaces, child processes and a temp dir.
pub struct Lab {
    pub prefix: String,
    pub tor: String,
    pub nodes: Vec<String>,
    pub dir: PathBuf,
    pub children: Vec<Child>,
}

// === impl Lab ===

impl Lab {
    /// A ToR namespace and `n` node namespaces, each linked to the ToR.
    pub fn new(n: u32) -> Lab {
        let c = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("eb{}x{c}", std::process::id());
        let dir = std::env::temp_dir().join(format!("edged-bgp-lab-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let tor = format!("{prefix}t");
        let mut lab = Lab {
            prefix: prefix.clone(),
            tor: tor.clone(),
            nodes: vec![],
            dir,
            children: vec![],
        };
        run(&["ip", "netns", "add", &tor]);
        run(&["ip", "-n", &tor, "link", "set", "lo", "up"]);
        for i in 1..=n {
            let node = format!("{prefix}n{i}");
            run(&["ip", "netns", "add", &node]);
            lab.nodes.push(node.clone());
            let tif = format!("e{i}");
            run(&[
                "ip", "-n", &tor, "link", "add", &tif, "type", "veth", "peer", "name", "eth0",
                "netns", &node,
            ]);
            for (ns, ifc, host) in [(&tor, tif.as_str(), 1), (&node, "eth0", 2)] {
                let v4 = format!("198.51.100.{}/30", 4 * (i - 1) + host);
                let v6 = format!("2001:db8:{i}::{host}/64");
                run(&["ip", "-n", ns, "addr", "add", &v4, "dev", ifc]);
                run(&["ip", "-n", ns, "addr", "add", &v6, "dev", ifc, "nodad"]);
                run(&["ip", "-n", ns, "link", "set", ifc, "up"]);
                run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            }
        }
        lab
    }

    /// Node `i`'s (1-based) IPv4 address, and the ToR's address facing it.
    pub fn node_v4(i: u32) -> (String, String) {
        (
            format!("198.51.100.{}", 4 * (i - 1) + 2),
            format!("198.51.100.{}", 4 * (i - 1) + 1),
        )
    }

    pub fn node_v6(i: u32) -> (String, String) {
        (format!("2001:db8:{i}::2"), format!("2001:db8:{i}::1"))
    }

    /// A fresh directory inside the lab dir.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Start a process inside namespace `ns` (network namespace only) and own it.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) -> &mut Child {
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{ns}"))
            .arg("--")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?} in {ns}: {e}"));
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// The ToR kernel route for `prefix` (empty when none).
    pub fn tor_route(&self, prefix: &str) -> String {
        TorView(self.tor.clone()).route(prefix)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.nodes.iter().chain(std::iter::once(&self.tor)) {
            // Kill anything left in the namespace (e.g. BIRD started by a speaker).
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run `f` on a fresh thread that entered network namespace `ns`, with a
/// current-thread tokio runtime. Children it spawns (BIRD) inherit the namespace
/// and die with the thread (parent-death signal).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Path to a file in the lab dir.
pub fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Read-only view of the ToR's kernel table, usable from any thread.
#[derive(Clone)]
pub struct TorView(pub String);

impl TorView {
    pub fn route(&self, prefix: &str) -> String {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        let out = Command::new("ip")
            .args([fam, "-n", &self.0, "route", "show", prefix])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
