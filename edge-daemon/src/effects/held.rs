//! Counting the connections held-back VIPs still serve, off the loop: a
//! walk of the data plane's `ed_held` costs two system calls an entry
//! (tens of milliseconds for tens of thousands of connections), which the
//! loop must not wait for while it handles health flips. A thread of its
//! own counts when asked and keeps the latest count; the loop asks once a
//! second and takes what is there.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// A count: when it began, connections by VIP address.
pub type Count = (SystemTime, BTreeMap<IpAddr, u64>);

#[derive(Default)]
struct Shared {
    /// A count is asked for, with this idle bound.
    want: Option<Duration>,
    stop: bool,
    last: Option<Count>,
    error: Option<String>,
}

/// The counting thread; stopped when dropped.
pub struct HeldCounts {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldCounts {
    /// Starts the thread on the maps pinned in `pin_dir`.
    pub fn start(pin_dir: PathBuf) -> std::io::Result<HeldCounts> {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("edged-held".into())
            .spawn(move || run(&pin_dir, &s))?;
        Ok(HeldCounts {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a new count and returns the latest one done (`None` until
    /// the first), or the error the last one ran into.
    pub fn ask(&self, idle: Duration) -> Result<Option<Count>, String> {
        let (m, cv) = &*self.shared;
        let mut s = m.lock().expect("held lock");
        s.want = Some(idle);
        cv.notify_one();
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(s.last.clone()),
        }
    }
}

impl Drop for HeldCounts {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        m.lock().expect("held lock").stop = true;
        cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(pin_dir: &std::path::Path, shared: &(Mutex<Shared>, Condvar)) {
    let (m, cv) = shared;
    let mut counter = None;
    loop {
        let idle = {
            let mut s = m.lock().expect("held lock");
            while s.want.is_none() && !s.stop {
                s = cv.wait(s).expect("held lock");
            }
            if s.stop {
                return;
            }
            s.want.take().expect("asked")
        };
        let began = SystemTime::now();
        if counter.is_none() {
            counter = edged_ebpf::HeldCounter::open(pin_dir)
                .map_err(|e| m.lock().expect("held lock").error = Some(e.to_string()))
                .ok();
        }
        let Some(c) = counter.as_mut() else { continue };
        let r = c.count(idle);
        let mut s = m.lock().expect("held lock");
        match r {
            Ok(counts) => s.last = Some((began, counts)),
            Err(e) => {
                s.error = Some(e.to_string());
                counter = None;
            }
        }
    }
}
