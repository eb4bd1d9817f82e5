//! From check states to what the forwarder and the announcer need: does a
//! proxy serve a VIP? Pure.

use std::collections::HashMap;

use crate::hysteresis::State;
use crate::spec::CheckKey;
use crate::status::CheckStatus;

/// A proxy's verdict for one VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every service of the VIP is up on the proxy.
    Serving,
    /// At least one is down; the reason names it and how it failed.
    NotServing(String),
}

/// Per (vip, proxy): `Serving` when every service is Up, `NotServing` when
/// any is Down (the first, by service name, gives the reason). A pair with
/// a service still Unknown and none Down has no entry: no verdict yet.
pub fn aggregate<'a>(
    checks: impl IntoIterator<Item = (&'a CheckKey, &'a CheckStatus)>,
) -> HashMap<(String, String), Verdict> {
    let mut by_pair: HashMap<(String, String), Vec<(&CheckKey, &CheckStatus)>> = HashMap::new();
    for (k, s) in checks {
        by_pair
            .entry((k.vip.clone(), k.proxy.clone()))
            .or_default()
            .push((k, s));
    }
    let mut out = HashMap::new();
    for (pair, mut checks) in by_pair {
        checks.sort_by(|a, b| a.0.service.cmp(&b.0.service));
        if let Some((k, s)) = checks.iter().find(|(_, s)| s.state == State::Down) {
            let why = s
                .last
                .as_ref()
                .map_or_else(|| "down".into(), |o| o.reason());
            out.insert(
                pair,
                Verdict::NotServing(format!("service {}: {why}", k.service)),
            );
        } else if checks.iter().all(|(_, s)| s.state == State::Up) {
            out.insert(pair, Verdict::Serving);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Outcome};

    fn key(vip: &str, svc: &str, px: &str) -> CheckKey {
        CheckKey {
            vip: vip.into(),
            service: svc.into(),
            proxy: px.into(),
        }
    }

    fn status(state: State, failure: Option<Failure>) -> CheckStatus {
        CheckStatus {
            state,
            last: Some(Outcome {
                latency: Default::default(),
                result: failure.map_or(Ok(()), Err),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_service_must_pass() {
        let checks = [
            (key("web", "http", "a"), status(State::Up, None)),
            (key("web", "tls", "a"), status(State::Up, None)),
            (key("web", "http", "b"), status(State::Up, None)),
            (
                key("web", "tls", "b"),
                status(State::Down, Some(Failure::Status(503))),
            ),
            (key("web", "http", "c"), status(State::Up, None)),
            (key("web", "tls", "c"), status(State::Unknown, None)),
        ];
        let v = aggregate(checks.iter().map(|(k, s)| (k, s)));
        assert_eq!(v[&("web".into(), "a".into())], Verdict::Serving);
        assert_eq!(
            v[&("web".into(), "b".into())],
            Verdict::NotServing("service tls: status 503".into())
        );
        assert!(
            !v.contains_key(&("web".into(), "c".into())),
            "unknown: no verdict"
        );
    }
}
