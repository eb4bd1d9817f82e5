//! What a fault-injection test does to a running lab: start a node on a
//! config of its own, reload, stop it with a signal or a planned restart,
//! find its BIRD, and watch the ToR's route without gaps going unseen.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Lab, workspace_bin};
use crate::{NetNs, Proc, net, poll_until};

impl Lab {
    /// Node `i`'s config file.
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.path().join("edged.yaml")
    }

    /// Node `i`'s state directory (`node.state_dir` of [`Lab::node_config`]).
    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.path().join("state")
    }

    /// Node `i`'s working directory (config, socket, log, state).
    pub fn node_dir(&self, i: usize) -> &Path {
        self.nodes[i].dir.path()
    }

    /// Writes `yaml` as node `i`'s config (for the next start or reload).
    pub fn write_config(&self, i: usize, yaml: &str) {
        std::fs::write(self.config_path(i), yaml).unwrap();
    }

    /// Starts edged on node `i` with `yaml`; waits until it answers.
    pub fn start_node_with(&mut self, i: usize, yaml: &str) {
        if let Err(e) = self.try_start_node_with(i, yaml, &[]) {
            panic!("{e}");
        }
    }

    /// Starts edged on node `i` with `yaml` and `extra` arguments; `Err`
    /// with its exit status and log when it exits instead of answering.
    pub fn try_start_node_with(
        &mut self,
        i: usize,
        yaml: &str,
        extra: &[&str],
    ) -> Result<(), String> {
        self.write_config(i, yaml);
        let log = std::fs::File::create(self.node_dir(i).join("edged.log")).unwrap();
        let n = &mut self.nodes[i];
        let mut cmd = n.ns.command(&self.edged_bin);
        cmd.arg("--config")
            .arg(n.dir.path().join("edged.yaml"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        let mut p = Proc::spawn(cmd);
        let sock = n.dir.path().join("edged.sock");
        let mut exited = None;
        let up = poll_until(Duration::from_secs(10), || {
            if let Some(s) = p.wait_timeout(Duration::ZERO) {
                exited = Some(s);
                return true;
            }
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        if let Some(s) = exited {
            return Err(format!("edged exited with {s}:\n{}", self.node_log(i)));
        }
        if !up {
            return Err(format!("edged did not answer:\n{}", self.node_log(i)));
        }
        self.nodes[i].edged = Some(p);
        Ok(())
    }

    /// `edgectl ARGS` against node `i`: (success, stdout, stderr). Bounded:
    /// an edgectl that has not answered within 15 s is killed and counts
    /// as a failure.
    pub fn edgectl_try(&self, i: usize, args: &[&str]) -> (bool, String, String) {
        let dir = crate::TempDir::new("ctl");
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut cmd = std::process::Command::new(workspace_bin("edgectl"));
        cmd.arg("--socket")
            .arg(self.socket(i))
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let mut p = Proc::spawn(cmd);
        let status = p.wait_timeout(Duration::from_secs(15));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        match status {
            Some(s) => (s.success(), read(&out), read(&err)),
            None => (
                false,
                read(&out),
                format!("edgectl {args:?} timed out after 15 s"),
            ),
        }
    }

    /// `edgectl -o json ARGS` against node `i`, parsed; panics on failure.
    pub fn edgectl_json(&self, i: usize, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let (ok, out, err) = self.edgectl_try(i, &full);
        assert!(ok, "edgectl {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("edgectl {args:?}: {e}: {out}"))
    }

    /// Sends `sig` to node `i`'s edged and waits (bounded) for it to exit.
    pub fn stop_node(
        &mut self,
        i: usize,
        sig: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> Option<ExitStatus> {
        let p = self.nodes[i].edged.as_mut()?;
        p.signal(sig);
        let status = p.wait_timeout(timeout);
        if status.is_some() {
            self.nodes[i].edged = None;
        }
        status
    }

    /// Waits (bounded) for node `i`'s edged to exit on its own.
    pub fn wait_node_exit(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let status = self.nodes[i].edged.as_mut()?.wait_timeout(timeout);
        if status.is_some() {
            self.nodes[i].edged = None;
        }
        status
    }

    /// The pid of node `i`'s edged.
    pub fn edged_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].edged.as_ref().map(Proc::pid)
    }

    /// The pid of node `i`'s managed BIRD (from its pid file), if alive.
    pub fn bird_pid(&self, i: usize) -> Option<i32> {
        let text = std::fs::read_to_string(self.state_dir(i).join("bird/bird.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            .is_ok()
            .then_some(pid)
    }

    /// Node `i`'s network namespace.
    pub fn node_ns(&self, i: usize) -> &NetNs {
        &self.nodes[i].ns
    }

    /// Polls until the ToR's route to `prefix` has `hops` next hops.
    pub fn wait_hops(&self, prefix: &str, hops: usize, timeout: Duration) -> bool {
        poll_until(timeout, || {
            net::nexthops(&self.tor_ns, prefix).len() == hops
        })
    }
}

/// `edged check ARGS`: (exit code, stdout and stderr), bounded in time:
/// `None` when it had not exited within `timeout` (then it is killed).
pub fn edged_check(args: &[&str], timeout: Duration) -> Option<(i32, String)> {
    let dir = crate::TempDir::new("chk");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = std::process::Command::new(workspace_bin("edged"));
    cmd.arg("check")
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut p = Proc::spawn(cmd);
    let status = p.wait_timeout(timeout)?;
    let text = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    Some((status.code().unwrap_or(-1), text))
}

// === RouteWatch ===

/// What a [`RouteWatch`] saw.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// Samples taken.
    pub samples: usize,
    /// Samples with fewer next hops than wanted.
    pub short: usize,
    /// Each change of the next-hop count: when, and the new count.
    pub changes: Vec<(Instant, usize)>,
}

impl Watched {
    /// When the count first fell below `want` at or after `t`.
    pub fn first_below(&self, want: usize, t: Instant) -> Option<Instant> {
        self.changes
            .iter()
            .find(|(at, n)| *at >= t && *n < want)
            .map(|(at, _)| *at)
    }
}

/// Samples the ToR's next hops for one prefix every 5 ms on a thread,
/// so that a gap of a few hundred milliseconds cannot slip between two
/// looks of a test.
pub struct RouteWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Watched>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RouteWatch {
    /// Starts watching `prefix` in `tor`; a sample is short when it has
    /// fewer than `want` next hops.
    pub fn start(tor: &NetNs, prefix: &str, want: usize) -> RouteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Watched::default()));
        let (s, w, prefix) = (stop.clone(), seen.clone(), prefix.to_string());
        let ns = tor.path();
        let thread = std::thread::spawn(move || {
            super::traffic::in_netns(&ns, move || {
                let family = if prefix.contains(':') { "-6" } else { "-4" };
                let mut last = None;
                loop {
                    // Read before the sample: the round that sees the
                    // stop began after it was asked for, so whatever the
                    // test saw before stopping this watch is in a sample.
                    let last_round = s.load(Ordering::Relaxed);
                    let out = std::process::Command::new("ip")
                        .args([family, "route", "show", &prefix])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default();
                    let n = out.split_whitespace().filter(|w| *w == "via").count();
                    let mut g = w.lock().unwrap();
                    g.samples += 1;
                    if n < want {
                        g.short += 1;
                    }
                    if last != Some(n) {
                        g.changes.push((Instant::now(), n));
                        last = Some(n);
                    }
                    drop(g);
                    if last_round {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        });
        RouteWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// What it saw so far.
    pub fn seen(&self) -> Watched {
        self.seen.lock().unwrap().clone()
    }

    /// Stops and returns what it saw.
    pub fn stop(mut self) -> Watched {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.halt();
    }
}
