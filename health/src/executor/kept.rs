//! The kept-connection loops: every plain HTTP/1.1 check whose connection
//! is kept runs on one of them (a few threads, one per core up to 4, each
//! check always on the same one by its key), the way HAProxy runs its
//! checks; in each loop one
//! epoll set holds the kept sockets, a calendar on the checker's 10 ms grid
//! holds the starts and deadlines, and each check is a slot in a table.
//! An attempt is a write at its start and a read when epoll says its answer
//! has come: two system calls, with no task wakeup, timer or reactor
//! registration per attempt (at 10,000 checks a second those cost as much
//! as the kernel's own work on the requests). The thread blocks in
//! `epoll_wait` until an answer comes or the next calendar entry is due;
//! checks arrive through a queue and an eventfd that wakes it.
//!
//! Everything else runs in the check's own task on the runtime:
//! connecting, TLS, HTTP/2, the other kinds, and every attempt after a
//! failure. A failure, a timeout, a connection the server closed or an
//! answer that does not leave the connection reusable hands the check back
//! through the checker's returns channel (the loop never spawns: the
//! checker gives the check a task again); its next kept connection brings
//! it back. A kept connection the server closes or resets between
//! attempts (a proxy that crashed or stops) sends the check back with an
//! attempt at once, and a failed attempt puts the check on `fastinter`
//! until it is decided: a crash is noticed in a few ticks, not at the
//! next interval.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::sync::mpsc;

use super::Sink;
use super::slots::{Adopted, Loop};
use crate::check::Check;

/// The eventfd's token in the epoll set (a slot's is `era << 32 | index`,
/// with indexes below 2^32 - 1).
const WAKE: u64 = u64::MAX;

/// Most kept-connection loops (threads): one per core up to this.
pub(crate) const MAX_LOOPS: usize = 4;

/// The loops; a check goes to the one its key hashes to.
pub(crate) struct Kept(Vec<KeptLoop>);

impl Kept {
    /// Starts one loop per core (at most [`MAX_LOOPS`]); `None` if none
    /// can be had: every check then stays in its own task.
    pub(crate) fn start(returns: mpsc::UnboundedSender<Box<Check>>, sink: Sink) -> Option<Kept> {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_LOOPS);
        let loops: Vec<KeptLoop> = (0..n)
            .filter_map(|_| KeptLoop::start(returns.clone(), sink.clone()))
            .collect();
        (!loops.is_empty()).then_some(Kept(loops))
    }

    /// Hands `check` to its loop (by its key: always the same one).
    pub(crate) fn adopt(
        &self,
        check: Box<Check>,
        socket: TcpStream,
        request: Vec<u8>,
    ) -> Result<(), Box<Check>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        check.key.hash(&mut h);
        let i = (h.finish() % self.0.len() as u64) as usize;
        self.0[i].adopt(check, socket, request)
    }

    /// The checks of `proxy`, on every loop, bring their next attempt
    /// forward.
    pub(crate) fn reprobe(&self, proxy: &str) {
        for l in &self.0 {
            l.reprobe(proxy);
        }
    }

    /// Stops every loop and waits for their threads.
    pub(crate) fn stop(&self) {
        for l in &self.0 {
            l.stop();
        }
    }
}

/// A handle on one loop (cheap to clone).
#[derive(Clone)]
pub(crate) struct KeptLoop(Arc<Inbox>);

/// What the loop's thread and the checker share.
struct Inbox {
    /// Checks on their way in.
    queue: Mutex<Vec<Adopted>>,
    /// Proxies whose checks are to attempt at once.
    wakes: Mutex<Vec<String>>,
    /// Wakes the thread: a check queued, or stop.
    wake: EventFd,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl KeptLoop {
    /// Starts the loop's thread; checks leave it through `returns` (the
    /// checker gives them a task again) and outcomes go to `sink`. `None`
    /// if the thread or its eventfd cannot be had: every check then stays
    /// in its own task.
    fn start(returns: mpsc::UnboundedSender<Box<Check>>, sink: Sink) -> Option<KeptLoop> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| tracing::error!("health: no kept-connection loop: eventfd: {e}"))
            .ok()?;
        let inbox = Arc::new(Inbox {
            queue: Mutex::new(Vec::new()),
            wakes: Mutex::new(Vec::new()),
            wake,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let s = inbox.clone();
        let thread = std::thread::Builder::new()
            .name("edged-kept".into())
            .spawn(move || {
                let mut l = Loop::new(returns, sink);
                loop {
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(&s, &mut l)
                    }));
                    match ran {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => {
                            // Its checks go on in tasks, and so do new ones.
                            tracing::error!("health: the kept-connection loop stopped: {e}");
                            let queued = {
                                let mut q = s.queue.lock().expect("kept lock");
                                s.stop.store(true, Ordering::SeqCst);
                                std::mem::take(&mut *q)
                            };
                            l.hand_back_all();
                            for a in queued {
                                l.give_back(a.check);
                            }
                            return;
                        }
                        // A bug must not stop checks: they go back to their
                        // tasks (a new connection each), and the loop starts
                        // over.
                        Err(_) => {
                            tracing::error!("health: the kept-connection loop panicked; its checks go back to their tasks");
                            l.hand_back_all();
                        }
                    }
                }
            })
            .map_err(|e| tracing::error!("health: no kept-connection loop: {e}"))
            .ok()?;
        *inbox.thread.lock().expect("kept lock") = Some(thread);
        Some(KeptLoop(inbox))
    }

    /// Takes over `check` with its kept `socket` (off the reactor) and its
    /// HTTP `request`. Gives the check back if the loop has stopped.
    fn adopt(
        &self,
        check: Box<Check>,
        socket: TcpStream,
        request: Vec<u8>,
    ) -> Result<(), Box<Check>> {
        let mut q = self.0.queue.lock().expect("kept lock");
        if self.0.stop.load(Ordering::SeqCst) {
            return Err(check);
        }
        q.push(Adopted {
            check,
            socket,
            request,
        });
        drop(q);
        let _ = self.0.wake.write(1);
        Ok(())
    }

    /// The checks of `proxy` on the loop bring their next attempt forward.
    fn reprobe(&self, proxy: &str) {
        self.0
            .wakes
            .lock()
            .expect("kept lock")
            .push(proxy.to_string());
        let _ = self.0.wake.write(1);
    }

    /// Stops the loop and waits for its thread: its checks and connections
    /// are dropped.
    fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        let _ = self.0.wake.write(1);
        let thread = self.0.thread.lock().expect("kept lock").take();
        if let Some(t) = thread
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// The thread: waits for answers and calendar entries, until stopped.
fn run(shared: &Inbox, l: &mut Loop) -> nix::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&shared.wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
    let mut events = vec![EpollEvent::empty(); 256];
    while !shared.stop.load(Ordering::SeqCst) {
        // Until the next calendar entry (rounded up: never early), or an
        // event.
        let timeout = match l.next_due() {
            Some(t) => {
                let wait = t.saturating_duration_since(Instant::now());
                let ms = wait.as_nanos().div_ceil(1_000_000).min(60_000);
                nix::poll::PollTimeout::from(ms as u16)
            }
            None => nix::poll::PollTimeout::NONE,
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for e in &events[..n] {
            if e.data() == WAKE {
                let _ = shared.wake.read();
                let adopted = std::mem::take(&mut *shared.queue.lock().expect("kept lock"));
                for a in adopted {
                    l.adopt(a, &epoll);
                }
                let wakes = std::mem::take(&mut *shared.wakes.lock().expect("kept lock"));
                for proxy in wakes {
                    l.reprobe(&proxy);
                }
            } else {
                l.on_ready(e.data());
            }
        }
        l.on_time();
    }
    Ok(())
}
