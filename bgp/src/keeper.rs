//! The keeper: a tiny process that holds a managed BIRD for edged, so that
//! a planned restart of edged keeps the BGP sessions and routes while a
//! crash still fails closed.
//!
//! ```text
//!  edged ──holds a Unix connection──► keeper ──parent of──► setpriv --pdeathsig KILL bird -f
//!    crash: the kernel closes the connection ─► keeper SIGKILLs BIRD at once
//!           (sessions close, the ToR withdraws within milliseconds)
//!    planned restart: "handover" ─► keeper lets go ("released") and waits
//!           `grace` for the next edged to connect; none ─► SIGKILL BIRD
//!    stop: "stop" ─► SIGTERM BIRD (Cease to the peers), SIGKILL after 5 s
//!    keeper killed ─► BIRD's parent-death signal kills BIRD
//!    BIRD exits ─► keeper exits (edged sees the connection close)
//! ```
//! One holder at a time; a second connection while one is held gets
//! `busy` and is closed. The keeper runs in a session of its own, so a
//! terminal's Ctrl-C reaches edged (which drains) and not BIRD.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a stopped BIRD gets to send its Cease before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// How often the keeper looks whether BIRD is still alive.
const TICK: Duration = Duration::from_millis(100);

/// The keeper's command line after its program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperArgs {
    /// The keeper's socket.
    pub socket: PathBuf,
    /// How long to wait for a holder (at start, and after a handover).
    pub grace: Duration,
    /// BIRD's argv (binary first).
    pub bird: Vec<String>,
}

impl KeeperArgs {
    /// `--socket PATH --grace-ms N -- BIRD ARGS...`
    pub fn parse(args: &[String]) -> Result<KeeperArgs, String> {
        let mut socket = None;
        let mut grace = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--socket" => socket = it.next().map(PathBuf::from),
                "--grace-ms" => {
                    grace = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .map(Duration::from_millis)
                }
                "--" => break,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let bird: Vec<String> = it.cloned().collect();
        match (socket, grace, bird.is_empty()) {
            (Some(socket), Some(grace), false) => Ok(KeeperArgs {
                socket,
                grace,
                bird,
            }),
            _ => Err("usage: bird-keeper --socket PATH --grace-ms N -- BIRD [ARGS...]".into()),
        }
    }

    /// The same, as arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--socket".to_string(),
            self.socket.display().to_string(),
            "--grace-ms".to_string(),
            self.grace.as_millis().to_string(),
            "--".to_string(),
        ];
        v.extend(self.bird.iter().cloned());
        v
    }
}

/// The keeper process: returns its exit status.
pub fn main(args: &[String]) -> i32 {
    let args = match KeeperArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bird-keeper: {e}");
            return 64;
        }
    };
    // Out of edged's process group and terminal: only edged decides.
    let _ = nix::unistd::setsid();
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bird-keeper: {e}");
            1
        }
    }
}

fn setpriv() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("setpriv"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/setpriv"))
}

fn run(args: &KeeperArgs) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o600))?;
    let mut bird = Command::new(setpriv())
        .args(["--pdeathsig", "KILL", "--"])
        .args(&args.bird)
        .stdin(Stdio::null())
        .spawn()?;
    let result = keep(args, &listener, &mut bird);
    let _ = std::fs::remove_file(&args.socket);
    result
}

/// What the holder's connection said.
enum Heard {
    Nothing,
    Handover,
    Stop,
    Closed,
}

fn hear(holder: &mut BufReader<UnixStream>) -> Heard {
    let mut line = String::new();
    match holder.read_line(&mut line) {
        Ok(0) | Err(_) => Heard::Closed,
        Ok(_) => match line.trim() {
            "handover" => Heard::Handover,
            "stop" => Heard::Stop,
            _ => Heard::Nothing,
        },
    }
}

fn keep(args: &KeeperArgs, listener: &UnixListener, bird: &mut Child) -> std::io::Result<()> {
    let bird_pid = Pid::from_raw(bird.id() as i32);
    let me = std::process::id();
    let mut holder: Option<BufReader<UnixStream>> = None;
    let mut wait_until = Some(Instant::now() + args.grace);
    loop {
        if bird.try_wait()?.is_some() {
            return Ok(()); // BIRD is gone: so is the keeper
        }
        if wait_until.is_some_and(|t| Instant::now() >= t) {
            let _ = kill(bird_pid, Signal::SIGKILL);
            let _ = bird.wait();
            return Ok(());
        }
        let (accept, heard) = {
            let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            if let Some(h) = &holder {
                fds.push(PollFd::new(h.get_ref().as_fd(), PollFlags::POLLIN));
            }
            let timeout =
                PollTimeout::try_from(TICK.as_millis() as i32).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready = |f: &PollFd| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if heard && let Some(h) = holder.as_mut() {
            match hear(h) {
                Heard::Nothing => {}
                Heard::Handover => {
                    // Let go of this holder at once, so that the next edged
                    // finds the keeper free however soon it comes.
                    let _ = h.get_mut().write_all(b"released\n");
                    holder = None;
                    wait_until = Some(Instant::now() + args.grace);
                    continue;
                }
                Heard::Stop => return stop(bird, bird_pid),
                Heard::Closed => {
                    // edged died without a word: fail closed at once.
                    let _ = kill(bird_pid, Signal::SIGKILL);
                    let _ = bird.wait();
                    return Ok(());
                }
            }
        }
        if accept && let Ok((mut s, _)) = listener.accept() {
            if holder.is_some() {
                let _ = s.write_all(b"busy\n");
                continue;
            }
            s.write_all(format!("keeper {me} {}\n", bird_pid.as_raw()).as_bytes())?;
            holder = Some(BufReader::new(s));
            wait_until = None;
        }
    }
}

fn stop(bird: &mut Child, pid: Pid) -> std::io::Result<()> {
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if bird.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = bird.wait();
    Ok(())
}

// === the holder's side ===

/// edged's connection to its keeper. While it is open, BIRD lives; when it
/// closes without [`KeeperLink::handover`], the keeper kills BIRD.
#[derive(Debug)]
pub struct KeeperLink {
    stream: std::os::unix::net::UnixStream,
    /// The keeper's pid.
    pub keeper_pid: i32,
    /// BIRD's pid.
    pub bird_pid: i32,
}

impl KeeperLink {
    /// Connects to a keeper at `socket` and takes the hold; `Ok(None)` when
    /// no keeper answers there.
    pub fn connect(socket: &Path) -> std::io::Result<Option<KeeperLink>> {
        let stream = match UnixStream::connect(socket) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut line = String::new();
        BufReader::new(stream.try_clone()?).read_line(&mut line)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["keeper", k, b] => {
                let (Ok(keeper_pid), Ok(bird_pid)) = (k.parse(), b.parse()) else {
                    return Err(std::io::Error::other(format!(
                        "bad keeper greeting {line:?}"
                    )));
                };
                stream.set_nonblocking(true)?;
                Ok(Some(KeeperLink {
                    stream,
                    keeper_pid,
                    bird_pid,
                }))
            }
            ["busy"] => Err(std::io::Error::other(
                "the keeper is held by another edged on this state directory",
            )),
            _ => Err(std::io::Error::other(format!(
                "bad keeper greeting {line:?}"
            ))),
        }
    }

    /// Whether the keeper (and so BIRD) is still there.
    pub fn alive(&mut self) -> bool {
        let mut b = [0u8; 64];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return false,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// A planned exit: the keeper keeps BIRD for its grace time, waiting
    /// for the next edged. Returns once the keeper has let go of this hold.
    pub fn handover(mut self) -> std::io::Result<()> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        self.stream.write_all(b"handover\n")?;
        let mut line = String::new();
        BufReader::new(&mut self.stream).read_line(&mut line)?;
        if line.trim() != "released" {
            return Err(std::io::Error::other(format!(
                "the keeper answered {line:?} to a handover"
            )));
        }
        Ok(())
    }

    /// Ends BIRD (SIGTERM, then SIGKILL after 5 s) and the keeper; waits
    /// up to `wait` for the keeper to go.
    pub fn stop(mut self, wait: Duration) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.write_all(b"stop\n");
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut b = [0u8; 64];
        while matches!(self.stream.read(&mut b), Ok(n) if n > 0) {}
    }
}
