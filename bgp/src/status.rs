//! Parsers for `show protocols all` and `show route export` output (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::reply::Reply;
use crate::spec::RouteState;

/// One BGP session as BIRD reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// edged's peer name (without the `edged_p_` prefix).
    pub name: String,
    /// BIRD's protocol state: `up`, `start`, `down`, ...
    pub state: String,
    /// BGP FSM state (`Established`, `Active`, `Connect`, ...).
    pub bgp_state: String,
    /// Unix time of the last state change (managed mode uses `timeformat "%s"`);
    /// `None` if BIRD printed another format.
    pub since_unix: Option<u64>,
    /// BIRD's raw `Since` column.
    pub since: String,
    /// Routes exported on the session's channel.
    pub exported: u64,
    pub last_error: Option<String>,
}

impl PeerStatus {
    /// True when the session is established.
    pub fn is_up(&self) -> bool {
        self.bgp_state == "Established"
    }

    /// Time in the current state, given the current Unix time.
    pub fn uptime(&self, now_unix: u64) -> Option<std::time::Duration> {
        self.since_unix
            .map(|s| std::time::Duration::from_secs(now_unix.saturating_sub(s)))
    }
}

/// Why the exports to a peer are not what edged expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MismatchKind {
    /// Expected announced but BIRD does not export it.
    Missing,
    /// Exported although edged wants it withdrawn.
    Unexpected,
    /// Draining but exported without GRACEFUL_SHUTDOWN 65535:0.
    MissingGracefulShutdown,
    /// Announced normally but exported with GRACEFUL_SHUTDOWN 65535:0.
    UnexpectedGracefulShutdown,
}

impl std::fmt::Display for MismatchKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MismatchKind::Missing => "not exported",
            MismatchKind::Unexpected => "exported although withdrawn",
            MismatchKind::MissingGracefulShutdown => "draining without GRACEFUL_SHUTDOWN",
            MismatchKind::UnexpectedGracefulShutdown => "announced with GRACEFUL_SHUTDOWN",
        })
    }
}

/// One difference between expected and real exports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportMismatch {
    pub peer: String,
    pub prefix: IpAddr,
    pub kind: MismatchKind,
}

// === parsers ===

/// Parse `show protocols all` into sessions whose protocol name starts with `prefix`.
pub fn parse_protocols(reply: &Reply, prefix: &str) -> Vec<PeerStatus> {
    let mut out: Vec<PeerStatus> = Vec::new();
    let mut current: Option<PeerStatus> = None;
    for (code, text) in &reply.lines {
        if *code == 1002 {
            out.extend(current.take());
            let cols: Vec<&str> = text.split_whitespace().collect();
            if let Some(name) = cols.first().and_then(|n| n.strip_prefix(prefix)) {
                let since = cols.get(4).copied().unwrap_or_default().to_string();
                current = Some(PeerStatus {
                    name: name.to_string(),
                    state: cols.get(3).copied().unwrap_or_default().to_string(),
                    bgp_state: cols.get(5).copied().unwrap_or_default().to_string(),
                    since_unix: since.parse().ok(),
                    since,
                    ..PeerStatus::default()
                });
            }
            continue;
        }
        let Some(cur) = current.as_mut() else {
            continue;
        };
        let t = text.trim();
        if let Some(v) = t.strip_prefix("BGP state:") {
            cur.bgp_state = v.trim().to_string();
        } else if let Some(v) = t.strip_prefix("Last error:") {
            cur.last_error = Some(v.trim().to_string());
        } else if let Some(v) = t.strip_prefix("Routes:") {
            cur.exported += v
                .split(',')
                .filter_map(|part| part.trim().strip_suffix(" exported"))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    out.extend(current);
    out
}

/// The route state of every VIP whose static protocols a
/// `show protocols "edged_*"` reply lists: `edged_a_NAME` up is announced,
/// `edged_d_NAME` up is draining, both down (or absent) withdrawn.
pub fn parse_route_protocols(reply: &Reply) -> BTreeMap<String, RouteState> {
    let mut out = BTreeMap::new();
    for (code, text) in &reply.lines {
        if *code != 1002 {
            continue;
        }
        let cols: Vec<&str> = text.split_whitespace().collect();
        let (Some(name), Some(state)) = (cols.first(), cols.get(3)) else {
            continue;
        };
        let up = *state == "up";
        if let Some(vip) = name.strip_prefix("edged_a_") {
            let e = out.entry(vip.to_string()).or_insert(RouteState::Withdrawn);
            if up && *e == RouteState::Withdrawn {
                *e = RouteState::Announced;
            }
        } else if let Some(vip) = name.strip_prefix("edged_d_") {
            let e = out.entry(vip.to_string()).or_insert(RouteState::Withdrawn);
            if up {
                *e = RouteState::Draining;
            }
        }
    }
    out
}

/// Prefixes (host routes) listed in a `show route` reply.
pub fn parse_route_prefixes(reply: &Reply) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for (_, text) in &reply.lines {
        if text.starts_with(' ') || text.starts_with('\t') {
            continue;
        }
        let Some(first) = text.split_whitespace().next() else {
            continue;
        };
        if let Some((addr, _len)) = first.split_once('/')
            && let Ok(ip) = addr.parse::<IpAddr>()
        {
            out.insert(ip);
        }
    }
    out
}

/// Expected and actual exports to one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSets {
    /// Every prefix that should be / is exported.
    pub all: BTreeSet<IpAddr>,
    /// The subset that should carry / carries 65535:0.
    pub graceful: BTreeSet<IpAddr>,
}

/// Compare what a peer really gets with what it should get.
pub fn diff_exports(peer: &str, expected: &ExportSets, actual: &ExportSets) -> Vec<ExportMismatch> {
    use MismatchKind::*;
    let (e, a) = (&expected.all, &actual.all);
    let both: BTreeSet<IpAddr> = e.intersection(a).copied().collect();
    let missing = e.difference(a).map(|p| (*p, Missing));
    let extra = a.difference(e).map(|p| (*p, Unexpected));
    let no_gs = both
        .iter()
        .filter(|p| expected.graceful.contains(p) && !actual.graceful.contains(p))
        .map(|p| (*p, MissingGracefulShutdown));
    let gs = both
        .iter()
        .filter(|p| !expected.graceful.contains(p) && actual.graceful.contains(p))
        .map(|p| (*p, UnexpectedGracefulShutdown));
    let mut out: Vec<ExportMismatch> = missing
        .chain(extra)
        .chain(no_gs)
        .chain(gs)
        .map(|(prefix, kind)| ExportMismatch {
            peer: peer.to_string(),
            prefix,
            kind,
        })
        .collect();
    out.sort();
    out
}
