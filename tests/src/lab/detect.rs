//! How fast a failed proxy is out, measured hop by hop on the real lab,
//! shared by the test (`tests/tests/detect.rs`) and the bench
//! (`tests/benches/detect.rs`): two nodes with one nginx proxy each, a
//! BIRD top-of-rack; edge1's proxy fails (killed, stopped gracefully,
//! frozen with SIGSTOP, its link taken down) and comes back, `rounds`
//! times each. For each fault: fault → the proxy out of edge1's table
//! (the time edged logged the table change) and fault → the ToR's route
//! without edge1 (a watcher samples it every 5 ms). It was edge1's only
//! proxy, so edge1 withdraws the VIP.

use std::time::{Duration, Instant, SystemTime};

use super::ops::RouteWatch;
use super::{Lab, Spec};
use crate::poll_until;

const V4: &str = "203.0.113.10";

/// What happens to the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL to nginx: the kernel closes its connections (RST or FIN)
    /// and its listener (new connections refused).
    Kill,
    /// nginx's graceful stop (SIGQUIT).
    Stop,
    /// SIGSTOP: connections stay open, nothing answers (the timeout path).
    Freeze,
    /// The node's link to the proxy goes down.
    LinkDown,
}

impl Fault {
    pub const ALL: [Fault; 4] = [Fault::Kill, Fault::Stop, Fault::Freeze, Fault::LinkDown];

    /// Its name in figures.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "crash",
            Fault::Stop => "stop",
            Fault::Freeze => "freeze",
            Fault::LinkDown => "linkdown",
        }
    }
}

/// One fault's timings, each from the fault, hop by hop: the check's
/// verdict (down), the proxy out of the table, BIRD's confirmation of
/// the withdrawal, the route gone at the ToR.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub fault: Fault,
    pub to_verdict: Duration,
    pub to_table: Duration,
    pub to_bird: Duration,
    pub to_tor: Duration,
}

/// A log line's leading RFC 3339 UTC time (`2026-12-02T13:39:35.776236Z`).
fn log_time(line: &str) -> Option<SystemTime> {
    let t = line.get(..27)?;
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs as u64)
            + Duration::from_micros(us as u64),
    )
}

/// Strips the log's colour escapes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// What edged logs at each hop, for the VIP web on proxy px1.
const VERDICT: &str = "check changed state vip=web service=http proxy=px1 state=Down";
const EMPTIED: &str = "applied action=SetTable { vip: \"web\", proxies: [] }";
const WITHDRAWN: &str = "route applied vip=web state=Withdrawn";

/// When node `i`'s edged logged `what`, after byte `from` of its log.
fn logged_at(lab: &Lab, i: usize, from: usize, what: &str) -> Option<SystemTime> {
    let log = lab.node_log(i);
    let line = log
        .get(from..)?
        .lines()
        .map(plain)
        .find(|l| l.contains(what))?;
    // The time just before it (BIRD's lines share the file and may run
    // into edged's).
    let head = &line[..line.find(what)?];
    let z = head.rfind("Z ")?;
    log_time(head.get((z + 1).checked_sub(27)?..)?)
}

/// Runs the faults, `rounds` times each in turn, with `check` as every
/// check's timing and, with `liveness`, each node watching its nginx's
/// process; hands each fault's timings to `each`.
pub fn run(rounds: usize, check: &str, liveness: bool, mut each: impl FnMut(&Timing)) {
    let mut spec = Spec::parse(super::spec::DEFAULT).unwrap();
    spec.proxies_per_node = 1;
    spec.check = check.into();
    spec.liveness = liveness;
    let mut lab = Lab::up(spec, &super::workspace_bin("edged"));
    for i in 0..2 {
        lab.start_node(i);
    }
    lab.until_hops(V4, 2, Duration::from_secs(30));
    for _ in 0..rounds {
        for fault in Fault::ALL {
            let watch = RouteWatch::start(&lab.tor_ns, V4, 2);
            let from = lab.node_log(0).len();
            let (wall, t0) = (SystemTime::now(), Instant::now());
            let px = &mut lab.nodes[0].proxies[0];
            match fault {
                Fault::Kill => px.nginx.kill(),
                Fault::Stop => px.nginx.quit(),
                Fault::Freeze => px.nginx.freeze(),
                Fault::LinkDown => {
                    lab.nodes[0]
                        .ns
                        .exec_ok(&["ip", "link", "set", "p1", "down"]);
                }
            }
            let gone = poll_until(Duration::from_secs(30), || {
                watch.seen().first_below(2, t0).is_some()
            });
            assert!(gone, "{fault:?}: edge1 still in the ToR's route");
            let tor = watch.stop().first_below(2, t0).expect("seen below");
            let mut at = [None; 3];
            assert!(
                poll_until(Duration::from_secs(5), || {
                    for (t, what) in at.iter_mut().zip([VERDICT, EMPTIED, WITHDRAWN]) {
                        *t = logged_at(&lab, 0, from, what);
                    }
                    at.iter().all(Option::is_some)
                }),
                "{fault:?}: not every hop logged ({at:?}):\n{}",
                lab.node_log(0).get(from..).unwrap_or_default()
            );
            let since = |t: Option<SystemTime>| {
                t.and_then(|t| t.duration_since(wall).ok())
                    .unwrap_or(Duration::ZERO)
            };
            each(&Timing {
                fault,
                to_verdict: since(at[0]),
                to_table: since(at[1]),
                to_bird: since(at[2]),
                to_tor: tor - t0,
            });
            let px = &mut lab.nodes[0].proxies[0];
            match fault {
                Fault::Kill | Fault::Stop => px.nginx.restart(),
                Fault::Freeze => px.nginx.thaw(),
                Fault::LinkDown => {
                    lab.nodes[0].ns.exec_ok(&["ip", "link", "set", "p1", "up"]);
                }
            }
            lab.until_hops(V4, 2, Duration::from_secs(30));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_read_as_utc() {
        let t = log_time("2026-12-02T13:39:35.776236Z  INFO x").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_796_218_775);
        assert_eq!(d.subsec_micros(), 776_236);
        assert_eq!(log_time("garbage"), None);
        assert_eq!(plain("\u{1b}[2mab\u{1b}[0mc"), "abc");
    }
}
