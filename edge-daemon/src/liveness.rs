//! Proxy liveness without probing: for a proxy whose config names its pid
//! file, a thread looks at the process the file names every 5 ms (its
//! state in `/proc`, a read of a few bytes) and, when the process is gone
//! or stopped (SIGSTOP), tells the loop, which asks the checker to bring
//! every check of that proxy forward (then `fastinter` decides it: a
//! stopped proxy is down after `fall` timeouts, not after the next slot).
//! The file is read again every second while it names no running
//! process; a process whose start time changed is a new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use edged_config::Config;
use tokio::sync::mpsc;

/// How often the process is looked at.
const LOOK: Duration = Duration::from_millis(5);
/// How often the pid file is read again while it names no running process.
const REREAD: Duration = Duration::from_secs(1);

/// The running watchers; stopped when dropped.
pub struct Liveness {
    watched: Vec<(String, PathBuf)>,
    stop: Arc<AtomicBool>,
    /// The pid of each watched process that runs now (0: none), in the
    /// order of `watched`.
    running: Arc<Vec<AtomicU32>>,
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the config asks to watch: (proxy, pid file).
fn wanted(cfg: &Config) -> Vec<(String, PathBuf)> {
    cfg.proxies
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.liveness.as_ref()?.pidfile.clone())))
        .collect()
}

impl Liveness {
    /// Watches what `cfg` names; each loss sends the proxy's name on `gone`.
    pub fn start(cfg: &Config, gone: &mpsc::UnboundedSender<String>) -> Liveness {
        let watched = wanted(cfg);
        let stop = Arc::new(AtomicBool::new(false));
        let running: Arc<Vec<AtomicU32>> =
            Arc::new(watched.iter().map(|_| AtomicU32::new(0)).collect());
        if !watched.is_empty() {
            let (w, s, r, g) = (watched.clone(), stop.clone(), running.clone(), gone.clone());
            let spawned = std::thread::Builder::new()
                .name("edged-liveness".into())
                .spawn(move || watch(&w, &s, &r, &g));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot watch the proxies' processes");
            }
        }
        Liveness {
            watched,
            stop,
            running,
        }
    }

    /// The pid of the process watched for `proxy` now, if one runs.
    pub fn watching(&self, proxy: &str) -> Option<u32> {
        let i = self.watched.iter().position(|(p, _)| p == proxy)?;
        Some(self.running[i].load(Ordering::Relaxed)).filter(|p| *p != 0)
    }

    /// After a reload: starts over if what is watched changed.
    pub fn follow(&mut self, cfg: &Config, gone: &mpsc::UnboundedSender<String>) {
        if wanted(cfg) != self.watched {
            *self = Liveness::start(cfg, gone);
        }
    }
}

/// The pid a pid file names.
fn read_pid(file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().parse().ok().filter(|p: &u32| *p > 0)
}

/// A process as `/proc/PID/stat` says: running (not a zombie, not
/// stopped), and its start time (a pid used again is another process).
fn look(pid: u32) -> Option<(bool, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state, then fields 4..
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some((!matches!(state, 'Z' | 'X' | 'T' | 't'), start))
}

/// One watched process.
struct Watched<'a> {
    proxy: &'a str,
    file: &'a Path,
    /// The process, while it runs: pid and start time.
    running: Option<(u32, u64)>,
    reread_at: std::time::Instant,
}

fn watch(
    what: &[(String, PathBuf)],
    stop: &AtomicBool,
    running: &[AtomicU32],
    gone: &mpsc::UnboundedSender<String>,
) {
    let now = std::time::Instant::now();
    let mut ws: Vec<Watched<'_>> = what
        .iter()
        .map(|(p, f)| Watched {
            proxy: p,
            file: f,
            running: None,
            reread_at: now,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        for (w, shown) in ws.iter_mut().zip(running) {
            match w.running {
                Some((pid, start)) if look(pid) != Some((true, start)) => {
                    tracing::warn!(proxy = %w.proxy, pid, "the proxy's process is gone or stopped; checking it at once");
                    w.running = None;
                    shown.store(0, Ordering::Relaxed);
                    w.reread_at = now + REREAD;
                    if gone.send(w.proxy.to_string()).is_err() {
                        return;
                    }
                }
                Some(_) => {}
                None if now >= w.reread_at => {
                    w.reread_at = now + REREAD;
                    if let Some(pid) = read_pid(w.file)
                        && let Some((true, start)) = look(pid)
                    {
                        tracing::debug!(proxy = %w.proxy, pid, "watching the proxy's process");
                        w.running = Some((pid, start));
                        shown.store(pid, Ordering::Relaxed);
                    }
                }
                None => {}
            }
        }
        std::thread::sleep(LOOK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_that_exits_or_stops_is_reported_at_once() {
        let dir = edged_testlab::TempDir::new("live");
        let file = dir.path().join("proxy.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        std::fs::write(&file, format!("{}\n", child.id())).unwrap();
        let cfg = edged_config::parse(&format!(
            "node: {{router_id: 192.0.2.1, asn: 65010}}\nproxies:\n  - {{name: px1, address: 192.0.2.130, delivery: host, liveness: {{pidfile: {}}}}}\n  - {{name: px2, address: 192.0.2.131, delivery: host}}\nvips: []\nbgp: {{peers: []}}\n",
            file.display()
        ))
        .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let l = Liveness::start(&cfg, &tx);
        // Once it is watched (a process already gone when it is first
        // looked at is no news).
        let pid = child.id();
        let watched = |pid| {
            edged_testlab::poll_until(Duration::from_secs(5), || l.watching("px1") == Some(pid))
        };
        assert!(watched(pid), "px1's process not watched");
        assert_eq!(l.watching("px2"), None, "px2 names no pid file");
        child.kill().unwrap();
        let t = std::time::Instant::now();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap().as_deref(), Some("px1"));
        println!("exit reported after {:?}", t.elapsed());
        let _ = child.wait();
        // The file still names the dead process: no second report.
        let again = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await;
        assert!(again.is_err(), "reported twice");

        // A new process in the file, then SIGSTOP: reported too.
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        std::fs::write(&file, format!("{}\n", child.id())).unwrap();
        // Read again within a second.
        assert!(watched(child.id()), "the new process not watched");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap().as_deref(), Some("px1"), "a stopped process");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn proc_stat_states() {
        let me = std::process::id();
        let (up, start) = look(me).unwrap();
        assert!(up && start > 0);
        assert_eq!(look(u32::MAX - 1), None);
    }
}
