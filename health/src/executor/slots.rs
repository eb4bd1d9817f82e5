//! The kept-connection loop's table: a slot per check, a calendar of
//! starts and deadlines on the checker's grid, and the steps of one
//! attempt (the request out at its start; the answer read, judged and
//! recorded when epoll reports it; a timeout at its deadline). A check
//! that cannot stay (a failure, a timeout, a close) leaves through the
//! returns channel.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use tokio::sync::mpsc;

use super::Sink;
use crate::check::Check;
use crate::http::parse::answered;
use crate::http::{ExchangeError, Judge, MAX_BUFFERED};
use crate::outcome::{Failure, Outcome};
use crate::spec::CheckKind;

/// A check arriving with its kept connection.
pub(super) struct Adopted {
    pub(super) check: Box<Check>,
    pub(super) socket: TcpStream,
    pub(super) request: Vec<u8>,
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
    judge: Judge,
    /// Tells this slot's events and calendar entries from an earlier
    /// occupant's.
    era: u32,
    attempt: Option<Attempt>,
    /// Tells the slot's pending start from one an early attempt replaced.
    start_gen: u64,
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
    /// The start planned as the slot's `start_gen` was this.
    Start(u64),
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
    /// Back to a task, with an attempt brought forward
    /// ([`Check::reprobe`]): the idle kept connection was closed or reset,
    /// as a proxy that crashed or stops does.
    Reprobe,
}

pub(super) struct Loop {
    /// Where checks leave the loop.
    returns: mpsc::UnboundedSender<Box<Check>>,
    sink: Sink,
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
    pub(super) fn new(returns: mpsc::UnboundedSender<Box<Check>>, sink: Sink) -> Loop {
        Loop {
            returns,
            sink,
            slots: Vec::new(),
            eras: Vec::new(),
            free: Vec::new(),
            calendar: BTreeMap::new(),
            seq: 0,
            body: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// A check leaves the loop for a task of its own.
    pub(super) fn give_back(&self, check: Box<Check>) {
        // The checker is gone if this fails: so is the check.
        let _ = self.returns.send(check);
    }

    pub(super) fn adopt(&mut self, a: Adopted, epoll: &Epoll) {
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
        let CheckKind::Http(h) = &a.check.spec.kind else {
            // Only HTTP checks have kept connections to hand over.
            self.free.push(idx);
            self.give_back(a.check);
            return;
        };
        let judge = Judge::new(h);
        if let Err(e) = epoll.add(&a.socket, EpollEvent::new(EpollFlags::EPOLLIN, data)) {
            tracing::warn!("health: cannot watch a kept connection: {e}");
            self.free.push(idx);
            self.give_back(a.check);
            return;
        }
        let mut check = a.check;
        let start = check.schedule.next_start(Instant::now());
        self.at(start, idx, era, Due::Start(0));
        self.slots[idx] = Some(Slot {
            timeout: check.spec.timeout,
            judge,
            check,
            socket: a.socket,
            request: a.request,
            buf: Vec::new(),
            era,
            attempt: None,
            start_gen: 0,
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

    /// The next calendar entry's time.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.calendar.first_key_value().map(|(t, _)| *t)
    }

    /// Every calendar entry that has come.
    pub(super) fn on_time(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.calendar.first_entry()
            && *entry.key() <= now
        {
            for e in entry.remove() {
                match e.due {
                    Due::Start(g) => self.start(e.idx, e.era, g),
                    Due::Deadline(seq) => self.deadline(e.idx, e.era, seq),
                }
            }
        }
    }

    /// Every idle check of `proxy` brings its next attempt forward (its
    /// process is gone or stopped), unless it is down or an early attempt
    /// found it well recently.
    pub(super) fn reprobe(&mut self, proxy: &str) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            if s.check.key.proxy != proxy || s.attempt.is_some() || !s.check.reprobe(now) {
                continue;
            }
            s.start_gen += 1;
            due.push((s.check.schedule.next_start(now), idx, s.era, s.start_gen));
        }
        for (t, idx, era, g) in due {
            self.at(t, idx, era, Due::Start(g));
        }
    }

    /// An attempt starts: the request goes out.
    fn start(&mut self, idx: usize, era: u32, planned: u64) {
        self.seq += 1;
        let seq = self.seq;
        let Some(s) = self.slot(idx, era) else { return };
        if s.start_gen != planned {
            // Replaced by an early attempt.
            return;
        }
        s.check.schedule.started();
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
        let at = s.check.schedule.grid(deadline);
        self.at(at, idx, era, Due::Deadline(seq));
    }

    /// An attempt's deadline: if it is still in flight, a timeout.
    fn deadline(&mut self, idx: usize, era: u32, seq: u64) {
        let Some(s) = self.slot(idx, era) else { return };
        if s.attempt.as_ref().is_some_and(|a| a.seq == seq) {
            let timeout = s.timeout;
            self.finish(idx, Err(Failure::Timeout(timeout)), After::Task);
        }
    }

    /// The socket of `data` has something: an answer (or part of one), a
    /// close, an error.
    pub(super) fn on_ready(&mut self, data: u64) {
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
    ) -> Option<(Option<Result<(), Failure>>, After)> {
        let s = self.slot(idx, era)?;
        fresh.clear();
        let first = s.buf.is_empty();
        let buf = if first { &mut *fresh } else { &mut s.buf };
        let (read, eof) = read_all(&s.socket, buf);
        let step = match (&s.attempt, read) {
            // Between attempts, the server closed or reset the idle
            // connection: a proxy that died or stops does that, so the
            // next attempt comes at once, in the task (a new connection:
            // one that succeeds counts no failure).
            (None, Err(_)) => (None, After::Reprobe),
            (None, Ok(())) if eof => (None, After::Reprobe),
            // Sent what nobody asked for: the next attempt is the task's,
            // on its schedule.
            (None, Ok(())) => (None, After::Task),
            // Nothing of the answer: the server had closed the connection.
            (Some(_), Err(_)) if buf.is_empty() => (None, After::Retry),
            (Some(_), Err(e)) => (Some(Err(e)), After::Task),
            (Some(a), Ok(())) => {
                match answered(buf, eof, s.judge.head_only, s.judge.wants_body(), body) {
                    Ok(None) => {
                        if first {
                            s.buf.extend_from_slice(fresh);
                        }
                        (None, After::Keep)
                    }
                    Err(ExchangeError::Stale(_)) => (None, After::Retry),
                    Err(ExchangeError::Failed(f)) => (Some(Err(f)), After::Task),
                    Ok(Some(_)) if Instant::now() > a.deadline => {
                        (Some(Err(Failure::Timeout(s.timeout))), After::Task)
                    }
                    Ok(Some(p)) => {
                        let verdict = s.judge.answer(p.status, body);
                        let after = if verdict.is_ok() && p.reusable && !eof {
                            After::Keep
                        } else {
                            After::Task
                        };
                        (Some(verdict), after)
                    }
                }
            }
        };
        Some(step)
    }

    /// Records the attempt's outcome, then keeps the check or hands it back.
    fn finish(&mut self, idx: usize, verdict: Result<(), Failure>, after: After) {
        let Some(s) = self.slots[idx].as_mut() else {
            return;
        };
        let latency = s
            .attempt
            .take()
            .map(|a| a.sent.elapsed())
            .unwrap_or_default();
        let outcome = Outcome {
            latency,
            result: verdict,
        };
        if !self.sink.take(&mut s.check, outcome, Instant::now()) {
            self.remove(idx);
            return;
        }
        match after {
            After::Keep => {
                let (era, start) = (s.era, s.check.schedule.next_start(Instant::now()));
                let g = s.start_gen;
                s.buf.clear();
                if s.buf.capacity() > 4096 {
                    s.buf = Vec::new();
                }
                self.at(start, idx, era, Due::Start(g));
            }
            after => self.hand_back(idx, after),
        }
    }

    /// The check goes back to a task of its own; its connection closes.
    fn hand_back(&mut self, idx: usize, after: After) {
        if let Some(mut s) = self.remove(idx) {
            match after {
                After::Retry => s.check.schedule.retry(Instant::now()),
                After::Reprobe => {
                    s.check.reprobe(Instant::now());
                }
                After::Keep | After::Task => {}
            }
            self.give_back(s.check);
        }
    }

    /// Every check back to its task (the loop is stopping or starting
    /// over).
    pub(super) fn hand_back_all(&mut self) {
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
/// peer has closed; an error.
fn read_all(mut socket: &TcpStream, buf: &mut Vec<u8>) -> (Result<(), Failure>, bool) {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() > MAX_BUFFERED {
            return (Err(Failure::Protocol("response too long".into())), false);
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
            Err(e) => return (Err(Failure::io(&e)), false),
        }
    }
}
