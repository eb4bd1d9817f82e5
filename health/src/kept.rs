//! The kept-connection loop: every plain HTTP/1.1 check whose connection
//! is kept runs here, on one thread, the way HAProxy runs its checks: one
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
//! to a task ([`Check::spawn`]); its next kept connection brings it back.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::time::Instant;

use crate::probe::Outcome;
use crate::probe::http::{self, Failure, MAX_BUFFERED};
use crate::runner::Check;

/// The eventfd's token in the epoll set (a slot's is `era << 32 | index`,
/// with indexes below 2^32 - 1).
const WAKE: u64 = u64::MAX;

/// A handle on the loop (cheap to clone).
#[derive(Clone)]
pub(crate) struct Kept(Arc<Shared>);

struct Shared {
    /// Checks on their way in.
    queue: Mutex<Vec<Adopted>>,
    /// Wakes the thread: a check queued, or stop.
    wake: EventFd,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A check arriving with its kept connection.
struct Adopted {
    check: Box<Check>,
    socket: TcpStream,
    request: Vec<u8>,
}

impl Kept {
    /// Starts the loop's thread; it hands checks back to tasks on the
    /// current runtime. `None` if the thread or its eventfd cannot be had:
    /// every check then stays in its own task.
    pub(crate) fn start() -> Option<Kept> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| tracing::error!("health: no kept-connection loop: eventfd: {e}"))
            .ok()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            wake,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let (s, rt) = (shared.clone(), tokio::runtime::Handle::current());
        let thread = std::thread::Builder::new()
            .name("edged-kept".into())
            .spawn(move || {
                let _rt = rt.enter();
                let mut l = Loop::default();
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
                            queued.into_iter().for_each(|a| a.check.spawn());
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
        *shared.thread.lock().expect("kept lock") = Some(thread);
        Some(Kept(shared))
    }

    /// Takes over `check` with its kept `socket` (off the reactor) and its
    /// HTTP `request`. Gives the check back if the loop has stopped.
    pub(crate) fn adopt(
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

    /// Stops the loop and waits for its thread: its checks and connections
    /// are dropped.
    pub(crate) fn stop(&self) {
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
fn run(shared: &Shared, l: &mut Loop) -> nix::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&shared.wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
    let mut events = vec![EpollEvent::empty(); 256];
    while !shared.stop.load(Ordering::SeqCst) {
        // Until the next calendar entry (rounded up: never early), or an
        // event.
        let timeout = match l.calendar.first_key_value() {
            Some((t, _)) => {
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
            } else {
                l.on_ready(e.data());
            }
        }
        l.on_time();
    }
    Ok(())
}

/// A check in the loop.
struct Slot {
    /// Boxed: the fields read on every event stay close together.
    check: Box<Check>,
    socket: TcpStream,
    request: Vec<u8>,
    /// The answer so far.
    buf: Vec<u8>,
    /// From the check's spec, read on every attempt.
    timeout: std::time::Duration,
    head_only: bool,
    want_body: bool,
    /// The expected statuses, when they fit here (else the spec's).
    expect: Option<([u16; 4], u8)>,
    /// Tells this slot's events and calendar entries from an earlier
    /// occupant's.
    era: u32,
    attempt: Option<Attempt>,
}

impl Slot {
    /// Whether an answer passes: its status from the slot's copy, the rest
    /// (a body to look for, many statuses) from the spec.
    fn judge(&self, status: u16, body: &[u8]) -> Result<(), String> {
        match self.expect {
            Some((e, n)) if !self.want_body => http::status_ok(&e[..usize::from(n)], status),
            _ => http::judge(&self.check.spec.kind, status, body),
        }
    }
}

/// The attempt in flight.
struct Attempt {
    sent: std::time::Instant,
    deadline: Instant,
    seq: u64,
}

/// What a calendar entry is for.
#[derive(Clone, Copy)]
enum Due {
    Start,
    /// The deadline of attempt `seq`.
    Deadline(u64),
}

#[derive(Clone, Copy)]
struct Entry {
    idx: usize,
    era: u32,
    due: Due,
}

/// How an attempt's connection ends up.
enum After {
    /// Kept: the next attempt runs here.
    Keep,
    /// Back to a task of its own, next attempt on its schedule.
    Task,
    /// Back to a task, with an attempt at once: the kept connection was
    /// found closed, and nothing was decided in this slot.
    Retry,
}

#[derive(Default)]
struct Loop {
    slots: Vec<Option<Slot>>,
    eras: Vec<u32>,
    free: Vec<usize>,
    /// Starts and deadlines, on the checker's grid.
    calendar: BTreeMap<Instant, Vec<Entry>>,
    seq: u64,
    /// Scratch buffers: answers' bodies, and answers read whole.
    body: Vec<u8>,
    scratch: Vec<u8>,
}

impl Loop {
    fn adopt(&mut self, a: Adopted, epoll: &Epoll) {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.eras.push(0);
                self.slots.len() - 1
            }
        };
        self.eras[idx] = self.eras[idx].wrapping_add(1);
        let era = self.eras[idx];
        let data = (u64::from(era) << 32) | idx as u64;
        if let Err(e) = epoll.add(&a.socket, EpollEvent::new(EpollFlags::EPOLLIN, data)) {
            tracing::warn!("health: cannot watch a kept connection: {e}");
            self.free.push(idx);
            a.check.spawn();
            return;
        }
        let mut check = a.check;
        let start = check.next_start();
        self.at(start, idx, era, Due::Start);
        let (head_only, want_body) = http::head_and_body(&check.spec.kind);
        let expect = match &check.spec.kind {
            crate::CheckKind::Http { expect_status, .. } if expect_status.len() <= 4 => {
                let mut e = [0; 4];
                e[..expect_status.len()].copy_from_slice(expect_status);
                Some((e, expect_status.len() as u8))
            }
            _ => None,
        };
        self.slots[idx] = Some(Slot {
            expect,
            timeout: check.spec.timeout,
            head_only,
            want_body,
            check,
            socket: a.socket,
            request: a.request,
            buf: Vec::new(),
            era,
            attempt: None,
        });
    }

    fn at(&mut self, t: Instant, idx: usize, era: u32, due: Due) {
        self.calendar
            .entry(t)
            .or_default()
            .push(Entry { idx, era, due });
    }

    /// The slot `idx` if `era` is still its occupant's.
    fn slot(&mut self, idx: usize, era: u32) -> Option<&mut Slot> {
        self.slots.get_mut(idx)?.as_mut().filter(|s| s.era == era)
    }

    /// Every calendar entry that has come.
    fn on_time(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.calendar.first_entry()
            && *entry.key() <= now
        {
            for e in entry.remove() {
                match e.due {
                    Due::Start => self.start(e.idx, e.era),
                    Due::Deadline(seq) => self.deadline(e.idx, e.era, seq),
                }
            }
        }
    }

    /// An attempt starts: the request goes out.
    fn start(&mut self, idx: usize, era: u32) {
        self.seq += 1;
        let seq = self.seq;
        let Some(s) = self.slot(idx, era) else { return };
        s.check.started();
        s.buf.clear();
        // A few bytes into an idle connection's empty send buffer: all at
        // once, or the connection is not fit to keep (a peer that stopped
        // reading, or closed it: an error).
        let written = (&s.socket).write(&s.request);
        if written.ok() != Some(s.request.len()) {
            self.hand_back(idx, After::Retry);
            return;
        }
        let deadline = Instant::now() + s.timeout;
        s.attempt = Some(Attempt {
            sent: std::time::Instant::now(),
            deadline,
            seq,
        });
        let at = s.check.grid(deadline);
        self.at(at, idx, era, Due::Deadline(seq));
    }

    /// An attempt's deadline: if it is still in flight, a timeout.
    fn deadline(&mut self, idx: usize, era: u32, seq: u64) {
        let Some(s) = self.slot(idx, era) else { return };
        if s.attempt.as_ref().is_some_and(|a| a.seq == seq) {
            let reason = http::timed_out(s.timeout);
            self.finish(idx, Err(reason), After::Task);
        }
    }

    /// The socket of `data` has something: an answer (or part of one), a
    /// close, an error.
    fn on_ready(&mut self, data: u64) {
        let (idx, era) = ((data & 0xffff_ffff) as usize, (data >> 32) as u32);
        let (mut body, mut fresh) = (
            std::mem::take(&mut self.body),
            std::mem::take(&mut self.scratch),
        );
        let step = self.answer(idx, era, &mut body, &mut fresh);
        (self.body, self.scratch) = (body, fresh);
        match step {
            None => {}
            // More of the answer to come.
            Some((None, After::Keep)) => {}
            Some((None, after)) => self.hand_back(idx, after),
            Some((Some(verdict), after)) => self.finish(idx, verdict, after),
        }
    }

    /// Reads what came for slot `idx` and judges it: the attempt's verdict
    /// if it is decided, and what becomes of the check. An answer that
    /// comes whole is read into `fresh` (the loop's, warm in the cache)
    /// rather than the slot's own buffer.
    fn answer(
        &mut self,
        idx: usize,
        era: u32,
        body: &mut Vec<u8>,
        fresh: &mut Vec<u8>,
    ) -> Option<(Option<Result<(), String>>, After)> {
        let s = self.slot(idx, era)?;
        fresh.clear();
        let first = s.buf.is_empty();
        let buf = if first { &mut *fresh } else { &mut s.buf };
        let (read, eof) = read_all(&s.socket, buf);
        let step = match (&s.attempt, read) {
            // Between attempts: the server closed the idle connection or
            // sent what nobody asked for. The next attempt is the task's.
            (None, _) => (None, After::Task),
            // Nothing of the answer: the server had closed the connection.
            (Some(_), Err(_)) if buf.is_empty() => (None, After::Retry),
            (Some(_), Err(e)) => (Some(Err(e)), After::Task),
            (Some(a), Ok(())) => match http::answered(buf, eof, s.head_only, s.want_body, body) {
                Ok(None) => {
                    if first {
                        s.buf.extend_from_slice(fresh);
                    }
                    (None, After::Keep)
                }
                Err(Failure::Stale(_)) => (None, After::Retry),
                Err(Failure::Reason(r)) => (Some(Err(r)), After::Task),
                Ok(Some(_)) if Instant::now() > a.deadline => {
                    (Some(Err(http::timed_out(s.timeout))), After::Task)
                }
                Ok(Some(p)) => {
                    let verdict = s.judge(p.status, body);
                    let after = if verdict.is_ok() && p.reusable && !eof {
                        After::Keep
                    } else {
                        After::Task
                    };
                    (Some(verdict), after)
                }
            },
        };
        Some(step)
    }

    /// Records the attempt's outcome, then keeps the check or hands it back.
    fn finish(&mut self, idx: usize, verdict: Result<(), String>, after: After) {
        let Some(s) = self.slots[idx].as_mut() else {
            return;
        };
        let latency = s
            .attempt
            .take()
            .map(|a| a.sent.elapsed())
            .unwrap_or_default();
        let outcome = Outcome {
            ok: verdict.is_ok(),
            reason: verdict.err().unwrap_or_else(|| "ok".into()),
            latency,
        };
        if !s.check.record(outcome) {
            self.remove(idx);
            return;
        }
        match after {
            After::Keep => {
                let (era, start) = (s.era, s.check.next_start());
                s.buf.clear();
                if s.buf.capacity() > 4096 {
                    s.buf = Vec::new();
                }
                self.at(start, idx, era, Due::Start);
            }
            after => self.hand_back(idx, after),
        }
    }

    /// The check goes back to a task of its own; its connection closes.
    fn hand_back(&mut self, idx: usize, after: After) {
        if let Some(mut s) = self.remove(idx) {
            if matches!(after, After::Retry) {
                s.check.retry_now();
            }
            s.check.spawn();
        }
    }

    /// Every check back to its task (the loop is stopping or starting
    /// over).
    fn hand_back_all(&mut self) {
        self.calendar.clear();
        for idx in 0..self.slots.len() {
            self.hand_back(idx, After::Task);
        }
    }

    fn remove(&mut self, idx: usize) -> Option<Slot> {
        let s = self.slots.get_mut(idx)?.take()?;
        self.free.push(idx);
        Some(s)
    }
}

/// Reads what has come on `socket` into `buf` (non-blocking): whether the
/// peer has closed; an error in words.
fn read_all(mut socket: &TcpStream, buf: &mut Vec<u8>) -> (Result<(), String>, bool) {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() > MAX_BUFFERED {
            return (Err("response too long".into()), false);
        }
        match socket.read(&mut chunk) {
            Ok(0) => return (Ok(()), true),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    // Short: all there was; epoll says if more comes.
                    return (Ok(()), false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (Ok(()), false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(crate::probe::io_reason(&e)), false),
        }
    }
}
