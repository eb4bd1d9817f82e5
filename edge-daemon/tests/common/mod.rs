//! A real `edged` in a fresh network namespace, with its own state directory
//! and control socket, driven through the real `edgectl`.

#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use edged_testlab::{NetNs, Proc, TempDir, poll_until};

pub const EDGED: &str = env!("CARGO_BIN_EXE_edged");
pub const EDGECTL: &str = env!("CARGO_BIN_EXE_edgectl");

/// The node's config body (after `node:`), with two VIPs.
pub const VIPS: &str = "
proxies:
  - {name: px1, address: 198.51.100.11, delivery: host}
  - {name: px2, address: 198.51.100.12, delivery: host}
vips:
  - name: web
    address: 203.0.113.10
    ports: [{port: 80}]
    services: [{name: http, check: {kind: http, path: /healthz}}]
  - name: api
    address: 203.0.113.11
    ports: [{port: 443}]
    services: [{name: tls, check: {kind: tcp, port: 443}}]
bgp:
  peers: [{name: tor1, address: 192.0.2.1, asn: 65000}]
";

pub struct Node {
    pub ns: NetNs,
    pub dir: TempDir,
    pub proc: Option<Proc>,
}

impl Node {
    /// A namespace and a config; edged is not started yet.
    pub fn new(body: &str) -> Node {
        let node = Node {
            ns: NetNs::new("ed"),
            dir: TempDir::new("node"),
            proc: None,
        };
        node.write_config(body);
        node
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("edged.yaml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("edged.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes `node:` (with this node's paths) followed by `body`.
    pub fn write_config(&self, body: &str) {
        let text = format!(
            "node:\n  router_id: 192.0.2.10\n  asn: 65010\n  state_dir: {}\n  control_socket: {}\n  drain_time: 1s\n{body}",
            self.state_dir().display(),
            self.socket().display()
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Starts edged in the namespace and waits until it answers.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts edged with extra environment variables.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join("edged.log")).unwrap();
        let mut cmd = self.ns.command(EDGED);
        cmd.arg("--config")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .envs(env.iter().copied());
        self.proc = Some(Proc::spawn(cmd));
        let up = poll_until(Duration::from_secs(10), || self.ctl(&["status"]).0);
        assert!(up, "edged did not answer; log:\n{}", self.log());
    }

    /// Sends `sig` and waits for exit; returns the exit code.
    pub fn stop_with(&mut self, sig: nix::sys::signal::Signal) -> Option<i32> {
        let mut p = self.proc.take().expect("edged running");
        p.signal(sig);
        let status = p
            .wait_timeout(Duration::from_secs(15))
            .expect("edged did not exit");
        status.code()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("edged.log")).unwrap_or_default()
    }

    /// Runs edgectl against this node: (success, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(EDGECTL)
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `edgectl -o json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let (ok, out, err) = self.ctl(&full);
        assert!(ok, "edgectl {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap()
    }

    /// The addresses on the namespace's loopback.
    pub fn lo_addrs(&self) -> String {
        self.ns.exec_ok(&["ip", "-o", "addr", "show", "dev", "lo"])
    }

    /// The Prometheus exposition of the node (default address, inside its
    /// namespace).
    pub fn metrics(&self) -> String {
        self.ns
            .exec_ok(&["curl", "-sf", "http://127.0.0.1:9180/metrics"])
    }

    pub fn vip(&self, name: &str) -> serde_json::Value {
        let vips = self.json(&["vips"]);
        vips.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no VIP {name} in {vips}"))
    }
}

/// The value of the first sample line that starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}
