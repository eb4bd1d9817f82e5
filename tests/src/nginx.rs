//! A real nginx in a network namespace, answering every request with its own
//! identity (`GET /` → `<name>\n`) and `GET /healthz` → `ok`. Faults on
//! demand: stop, freeze (SIGSTOP), answer 500, answer the wrong body.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{NetNs, Proc, TempDir, poll_until};

/// How the health endpoint behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// 200 `ok`.
    Ok,
    /// 500.
    Error,
    /// 200 with a body that is not `ok`.
    WrongBody,
}

/// An nginx process serving one identity on `port`.
pub struct Nginx {
    name: String,
    port: u16,
    /// A second port speaking HTTP/2 in clear (prior knowledge).
    h2_port: Option<u16>,
    dir: TempDir,
    proc: Option<Proc>,
    ns_path: PathBuf,
}

impl Nginx {
    /// Starts nginx in `ns` on `port` (all addresses, IPv4 and IPv6).
    pub fn start(ns: &NetNs, name: &str, port: u16) -> Nginx {
        Nginx::start_with(ns, name, port, None)
    }

    /// As [`Nginx::start`], and HTTP/2 in clear (prior knowledge, nginx's
    /// `listen ... http2`) on `h2_port` when given.
    pub fn start_with(ns: &NetNs, name: &str, port: u16, h2_port: Option<u16>) -> Nginx {
        let mut n = Nginx {
            name: name.into(),
            port,
            h2_port,
            dir: TempDir::new("ngx"),
            proc: None,
            ns_path: ns.path(),
        };
        n.write_conf(Health::Ok);
        n.spawn();
        n
    }

    /// Runs nginx on the config written; waits for its pid file.
    fn spawn(&mut self) {
        let pid_file = self.dir.path().join("nginx.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns_path.display()))
            .arg("--")
            .arg("nginx")
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.proc = Some(Proc::spawn(cmd));
        assert!(
            poll_until(Duration::from_secs(10), || pid_file.exists()),
            "nginx {} did not start",
            self.name
        );
    }

    /// SIGKILL to master and workers, as a crash: the kernel closes every
    /// connection and the listener.
    pub fn kill(&mut self) {
        self.signal_all(Signal::SIGKILL);
        if let Some(p) = self.proc.as_mut() {
            p.wait_timeout(Duration::from_secs(5));
        }
        self.proc = None;
    }

    /// SIGQUIT: nginx's graceful stop (idle keep-alive connections closed,
    /// the listener closed, requests in flight finished).
    pub fn quit(&mut self) {
        self.signal(Signal::SIGQUIT);
        if let Some(p) = self.proc.as_mut()
            && p.wait_timeout(Duration::from_secs(5)).is_none()
        {
            self.signal_all(Signal::SIGKILL);
        }
        self.proc = None;
    }

    /// Starts it again after a kill, a quit or a stop.
    pub fn restart(&mut self) {
        if self.proc.is_none() {
            self.spawn();
        }
    }

    fn write_conf(&self, health: Health) {
        let d = self.dir.path().display();
        let healthz = match health {
            Health::Ok => "return 200 \"ok\\n\";",
            Health::Error => "return 500 \"broken\\n\";",
            Health::WrongBody => "return 200 \"maintenance\\n\";",
        };
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root root;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_timeout 60s;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {p} reuseport;\n    listen [::]:{p} ipv6only=on reuseport;\n{h2}\
                 location = /healthz {{ {healthz} }}\n    location / {{ return 200 \"{n}\\n\"; }}\n  }}\n}}\n",
            p = self.port,
            n = self.name,
            h2 = self
                .h2_port
                .map(|p| format!("    listen {p} http2;\n"))
                .unwrap_or_default(),
        );
        std::fs::write(self.dir.path().join("nginx.conf"), conf).unwrap();
    }

    /// Changes what `/healthz` answers (config rewrite + SIGHUP, as an
    /// operator would); waits for the new workers.
    pub fn set_health(&self, health: Health) {
        self.write_conf(health);
        self.signal(Signal::SIGHUP);
    }

    /// SIGSTOP: connections hang (the timeout path of a check).
    pub fn freeze(&self) {
        self.signal_all(Signal::SIGSTOP);
    }

    /// SIGCONT after a freeze.
    pub fn thaw(&self) {
        self.signal_all(Signal::SIGCONT);
    }

    /// Stops nginx (master and workers): connections are refused.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let exited = self
            .proc
            .as_mut()
            .is_none_or(|p| p.wait_timeout(Duration::from_secs(5)).is_some());
        if !exited {
            self.signal_all(Signal::SIGKILL);
        }
        self.proc = None;
    }

    /// Its pid file (the master's pid).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }

    /// The identity it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn signal(&self, sig: Signal) {
        if let Some(p) = &self.proc {
            p.signal(sig);
        }
    }

    /// Master and workers (a frozen master alone still lets workers answer).
    fn signal_all(&self, sig: Signal) {
        let Some(p) = &self.proc else { return };
        let master = p.pid().to_string();
        let out = std::process::Command::new("pgrep")
            .args(["-P", &master])
            .output()
            .unwrap();
        let mut pids = vec![master];
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        for pid in pids {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
        }
    }

    /// Path of the namespace it runs in.
    pub fn ns_path(&self) -> &PathBuf {
        &self.ns_path
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Workers outlive a killed master: kill them all, then reap.
        self.signal_all(Signal::SIGKILL);
        self.signal_all(Signal::SIGCONT);
        self.proc = None;
    }
}
