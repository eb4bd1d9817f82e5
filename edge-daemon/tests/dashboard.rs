//! Every metric the Grafana dashboard queries is one edged exports: the
//! names in the dashboard's expressions are checked against the exposition
//! of the daemon's own registry.

use std::collections::BTreeSet;

/// Names the families expose, from their `# TYPE name kind` lines, with
/// every family given a sample (a family without one is not printed).
fn exported() -> BTreeSet<String> {
    use edge_daemon::metrics::{ComponentLabels, Metrics};
    use edge_daemon::reconcile::{Plan, RouteState, VipDecision};
    let m = Metrics::new();
    m.reload(true, 1.0);
    m.reload(false, 2.0);
    m.effect_errors
        .get_or_create(&ComponentLabels {
            component: "addresses".into(),
        })
        .inc();
    m.observe_plan(
        &Plan {
            vips: vec![VipDecision {
                name: "web".into(),
                route: RouteState::Announced,
                reason: String::new(),
                serving: vec![],
                configured: 0,
                handoff: false,
                holding: None,
            }],
            ..Default::default()
        },
        &Default::default(),
        &Default::default(),
    );
    m.drift("address");
    m.observe_check(&edged_health::Outcome::pass(
        std::time::Duration::from_millis(3),
    ));
    let key = edged_health::CheckKey {
        vip: "web".into(),
        service: "http".into(),
        proxy: "px1".into(),
    };
    m.observe_checks(&[(key, edged_health::CheckStatus::default())]);
    let counters = edged_ebpf::Counters {
        vips: vec![edged_ebpf::VipCounters {
            addr: Some("203.0.113.10".parse().unwrap()),
            ..Default::default()
        }],
        proxies: vec![edged_ebpf::ProxyCounters {
            name: "px1".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    *m.xdp.lock().unwrap() = Some(edge_daemon::metrics_xdp::XdpSnapshot {
        counters,
        names: Default::default(),
        per_vip: true,
    });
    let peer = edged_bgp::PeerStatus {
        name: "tor".into(),
        state: "up".into(),
        bgp_state: "Established".into(),
        since_unix: None,
        since: String::new(),
        exported: 1,
        last_error: None,
    };
    m.observe_bgp(&edge_daemon::effects::BgpObservation {
        peers: vec![peer],
        restarts: 1,
        ..Default::default()
    });
    m.bgp_export_mismatches.inc();
    let text = m.encode();
    let mut names = BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut it = line.split_whitespace();
        let (Some(name), Some(kind)) = (it.next(), it.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `edged_...` identifier in the dashboard's query expressions.
fn queried() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/grafana/edged-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let mut names = BTreeSet::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("edged_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let exported = exported();
    let queried = queried();
    assert!(
        queried.len() >= 5,
        "dashboard queries too little: {queried:?}"
    );
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries metrics edged does not export: {missing:?}\nexported: {exported:?}"
    );
}
