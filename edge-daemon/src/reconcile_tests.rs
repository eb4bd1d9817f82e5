//! Unit tests of the reconcile step: plain values in, decisions out.

use std::time::{Duration, SystemTime};

use crate::intents::{Intents, Since};
use crate::reconcile::*;

const CONFIG: &str = "
node: {router_id: 192.0.2.10, asn: 65010, drain_time: 30s}
forwarder: {uplinks: [eth0]}
proxies:
  - {name: a, address: 198.51.100.1, interface: eth1, mac: '02:00:00:00:00:01', weight: 100}
  - {name: b, address: 198.51.100.2, interface: eth1, mac: '02:00:00:00:00:02', weight: 50}
  - {name: c, address: 198.51.100.3, interface: eth1, mac: '02:00:00:00:00:03'}
vips:
  - name: web
    address: 203.0.113.10
    ports: [{port: 80}]
    proxies: [a, b]
    min_healthy: 2
    services: [{name: http, check: {kind: http}}]
  - name: dns
    address: 203.0.113.53
    ports: [{port: 53, protocol: udp}]
    services: [{name: d, check: {kind: dns, query_name: x.example}}]
bgp: {peers: [{name: tor, address: 192.0.2.1, asn: 65000}]}
";

fn config() -> edged_config::Config {
    edged_config::parse(CONFIG).unwrap()
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn healthy(pairs: &[(&str, &str)]) -> HealthView {
    let mut h = HealthView {
        running: true,
        ..Default::default()
    };
    for (v, p) in pairs {
        h.set(v, p, Serve::Serving);
    }
    h
}

fn run(
    cfg: &edged_config::Config,
    h: &HealthView,
    i: &Intents,
    a: &Applied,
    now: SystemTime,
) -> Plan {
    step(&Inputs {
        config: cfg,
        health: h,
        intents: i,
        applied: a,
        now,
        shutting_down: false,
        stopping_since: None,
        held: &HeldConnections::default(),
        learning_flows: false,
    })
}

/// Applies every action of a plan to `applied`, as drivers that succeed do.
fn apply(a: &mut Applied, plan: &Plan) {
    for act in &plan.actions {
        a.record(act);
    }
}

fn route(plan: &Plan, vip: &str) -> RouteState {
    plan.vips.iter().find(|d| d.name == vip).unwrap().route
}

#[test]
fn no_health_result_withdraws_and_says_why() {
    let cfg = config();
    let plan = run(
        &cfg,
        &HealthView::default(),
        &Intents::default(),
        &Applied::default(),
        t(0),
    );
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert!(
        plan.vips[0].reason.contains("0 of 2 proxies serve"),
        "{}",
        plan.vips[0].reason
    );
    assert!(plan.vips[0].reason.contains("no health checker running"));
    // Addresses are placed regardless; empty tables are installed; nothing announced.
    assert!(
        plan.actions
            .contains(&Action::AddAddress("203.0.113.10".parse().unwrap()))
    );
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "web".into(),
        proxies: vec![]
    }));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Route { .. }))
    );
}

#[test]
fn min_healthy_decides_announcement() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("dns", "c")]);
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    assert_eq!(
        route(&plan, "web"),
        RouteState::Withdrawn,
        "1 of 2 < min_healthy 2"
    );
    assert_eq!(route(&plan, "dns"), RouteState::Announced, "min_healthy 1");
    let h = healthy(&[("web", "a"), ("web", "b")]);
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    assert_eq!(route(&plan, "web"), RouteState::Announced);
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "web".into(),
        proxies: vec![("a".into(), 100), ("b".into(), 50)]
    }));
}

#[test]
fn unhealthy_proxy_leaves_the_table_with_reason() {
    let cfg = config();
    let mut h = healthy(&[("dns", "a"), ("dns", "b")]);
    h.set("dns", "c", Serve::NotServing("service d: timeout".into()));
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    let dns = plan.vips.iter().find(|d| d.name == "dns").unwrap();
    assert_eq!(dns.serving, ["a", "b"]);
    assert_eq!(dns.route, RouteState::Announced);
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "dns".into(),
        proxies: vec![("a".into(), 100), ("b".into(), 50)]
    }));
}

#[test]
fn steady_state_has_no_actions() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let plan = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &plan);
    let again = run(&cfg, &h, &Intents::default(), &a, t(1));
    assert_eq!(again.actions, vec![]);
}

#[test]
fn drain_announces_graceful_then_withdraws_after_drain_time() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    assert_eq!(a.routes["web"], RouteState::Announced);

    let mut i = Intents::default();
    i.drained.insert("web".into(), Since { since: t(10) });
    let plan = run(&cfg, &h, &i, &a, t(10));
    assert_eq!(route(&plan, "web"), RouteState::Draining);
    assert_eq!(
        route(&plan, "dns"),
        RouteState::Announced,
        "drain is per VIP"
    );
    assert_eq!(plan.wake_at, Some(t(40)));
    apply(&mut a, &plan);

    let plan = run(&cfg, &h, &i, &a, t(39));
    assert_eq!(plan.actions, vec![], "still draining");
    let plan = run(&cfg, &h, &i, &a, t(40));
    assert_eq!(
        plan.actions,
        vec![Action::Route {
            vip: "web".into(),
            state: RouteState::Withdrawn
        }]
    );
    apply(&mut a, &plan);

    i.drained.clear();
    let plan = run(&cfg, &h, &i, &a, t(50));
    assert_eq!(
        plan.actions,
        vec![Action::Route {
            vip: "web".into(),
            state: RouteState::Announced
        }]
    );
}

#[test]
fn drain_of_a_withdrawn_vip_stays_withdrawn_and_restart_does_not_announce() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b")]);
    let mut i = Intents::default();
    i.drained.insert("web".into(), Since { since: t(0) });
    // Fresh start (nothing applied) with a persisted drain: never announced.
    let plan = run(&cfg, &h, &i, &Applied::default(), t(1));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert_eq!(plan.vips[0].reason, "drained by operator");
}

#[test]
fn health_failure_during_drain_withdraws_at_once() {
    let cfg = config();
    let mut a = Applied::default();
    a.routes.insert("web".into(), RouteState::Draining);
    let mut i = Intents::default();
    i.drained.insert("web".into(), Since { since: t(0) });
    let plan = run(&cfg, &healthy(&[("web", "a")]), &i, &a, t(1));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert!(plan.vips[0].reason.starts_with("1 of 2 proxies serve"));
}

#[test]
fn maintenance_drains_every_vip_and_zero_drain_time_withdraws_directly() {
    let mut cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let i = Intents {
        maintenance: Some(Since { since: t(5) }),
        ..Default::default()
    };
    let plan = run(&cfg, &h, &i, &a, t(5));
    assert!(plan.vips.iter().all(|d| d.route == RouteState::Draining));
    cfg.node.drain_time = Duration::ZERO;
    let plan = run(&cfg, &h, &i, &a, t(5));
    assert!(plan.vips.iter().all(|d| d.route == RouteState::Withdrawn));
    assert!(plan.vips.iter().all(|d| d.reason == "maintenance"));
}

#[test]
fn shutdown_withdraws_then_removes_addresses() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let down = |a: &Applied| {
        step(&Inputs {
            config: &cfg,
            health: &h,
            intents: &Intents::default(),
            applied: a,
            now: t(1),
            shutting_down: true,
            stopping_since: None,
            held: &HeldConnections::default(),
            learning_flows: false,
        })
    };
    // First every route goes; nothing is removed while one is still up.
    let plan = down(&a);
    assert!(
        plan.actions.iter().all(|x| matches!(
            x,
            Action::Route {
                state: RouteState::Withdrawn,
                ..
            }
        )),
        "{:?}",
        plan.actions
    );
    assert_eq!(plan.actions.len(), 2);
    // Once the withdrawals are confirmed, the addresses go.
    apply(&mut a, &plan);
    let plan = down(&a);
    assert_eq!(
        plan.actions
            .iter()
            .filter(|x| matches!(x, Action::RemoveAddress(_)))
            .count(),
        2,
        "{:?}",
        plan.actions
    );
    apply(&mut a, &plan);
    assert!(down(&a).actions.is_empty());
}

#[test]
fn removed_vip_is_withdrawn_and_cleaned_up() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let mut smaller = cfg.clone();
    smaller.vips.retain(|v| v.name != "dns");
    let plan = run(&smaller, &h, &Intents::default(), &a, t(1));
    assert_eq!(
        plan.actions,
        vec![Action::Route {
            vip: "dns".into(),
            state: RouteState::Withdrawn
        }]
    );
    // The table and the address go once the withdrawal is confirmed.
    apply(&mut a, &plan);
    let plan = run(&smaller, &h, &Intents::default(), &a, t(2));
    assert_eq!(
        plan.actions,
        vec![
            Action::RemoveTable { vip: "dns".into() },
            Action::RemoveAddress("203.0.113.53".parse().unwrap()),
        ]
    );
}

#[test]
fn announcement_comes_after_address_and_table() {
    let cfg = config();
    let h = healthy(&[("dns", "a")]);
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    let pos = |f: &dyn Fn(&Action) -> bool| plan.actions.iter().position(f).unwrap();
    let addr = pos(&|a| *a == Action::AddAddress("203.0.113.53".parse().unwrap()));
    let table = pos(&|a| matches!(a, Action::SetTable { vip, .. } if vip == "dns"));
    let ann = pos(&|a| matches!(a, Action::Route { vip, .. } if vip == "dns"));
    assert!(addr < ann && table < ann, "{:?}", plan.actions);
}

#[test]
fn no_vip_interface_means_no_address_actions() {
    let mut cfg = config();
    cfg.node.vip_interface = None;
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::AddAddress(_)))
    );
    assert_eq!(route(&plan, "web"), RouteState::Announced);
}

#[test]
fn runtime_weights_override_the_config() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b")]);
    let mut i = Intents::default();
    i.weights.insert("a".into(), 1);
    let plan = run(&cfg, &h, &i, &Applied::default(), t(0));
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "web".into(),
        proxies: vec![("a".into(), 1), ("b".into(), 50)]
    }));
}

#[test]
fn drain_with_handoff_hands_off_then_drains_then_withdraws_and_undrain_stops() {
    let cfg = edged_config::parse(&CONFIG.replace(
        "forwarder: {uplinks: [eth0]}",
        "forwarder: {uplinks: [eth0], handoff: {address: 192.0.2.2, peers: [192.0.2.6], time: 5s}}",
    ))
    .unwrap();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let handoff = |on| Action::Handoff {
        vip: "web".into(),
        on,
    };

    let mut i = Intents::default();
    i.drained.insert("web".into(), Since { since: t(10) });
    // Phase 1: still announced, new connections go to the peers.
    let plan = run(&cfg, &h, &i, &a, t(10));
    assert_eq!(plan.actions, vec![handoff(true)]);
    assert_eq!(route(&plan, "web"), RouteState::Announced);
    assert!(plan.vips[0].handoff && !plan.vips[1].handoff);
    assert!(
        plan.vips[0]
            .reason
            .contains("handed to peer nodes, graceful shutdown in 5s"),
        "{}",
        plan.vips[0].reason
    );
    assert_eq!(plan.wake_at, Some(t(15)));
    apply(&mut a, &plan);
    assert_eq!(run(&cfg, &h, &i, &a, t(14)).actions, vec![]);
    // Phase 2: graceful shutdown for drain_time, handoff still on.
    let plan = run(&cfg, &h, &i, &a, t(15));
    assert_eq!(
        plan.actions,
        vec![Action::Route {
            vip: "web".into(),
            state: RouteState::Draining
        }]
    );
    assert_eq!(plan.wake_at, Some(t(45)));
    apply(&mut a, &plan);
    // Phase 3: withdrawn; handoff stays on for stragglers.
    let plan = run(&cfg, &h, &i, &a, t(45));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert!(plan.vips[0].handoff);
    apply(&mut a, &plan);
    assert!(a.handoff.contains("web"));

    // Undrain: handoff off before the route is announced again.
    i.drained.clear();
    let plan = run(&cfg, &h, &i, &a, t(50));
    assert_eq!(
        plan.actions,
        vec![
            handoff(false),
            Action::Route {
                vip: "web".into(),
                state: RouteState::Announced
            }
        ]
    );
    apply(&mut a, &plan);
    assert!(a.handoff.is_empty());

    // Without handoff configured the drain starts with the graceful shutdown:
    // web drained again, no handoff, and the route drains at once.
    i.drained.insert("web".into(), Since { since: t(60) });
    let plan = run(&config(), &h, &i, &a, t(60));
    assert_eq!(route(&plan, "web"), RouteState::Draining);
    assert!(plan.vips.iter().all(|d| !d.handoff), "{:?}", plan.vips);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Handoff { on: true, .. })),
        "{:?}",
        plan.actions
    );
}

#[test]
fn a_withdrawn_drained_vip_holds_until_its_connections_end_or_the_timeout() {
    let cfg = edged_config::parse(&CONFIG.replace(
        "forwarder: {uplinks: [eth0]}",
        "forwarder: {uplinks: [eth0], handoff: {address: 192.0.2.2, peers: [192.0.2.6], time: 5s, connection_timeout: 20s, connection_idle: 40s}}",
    ))
    .unwrap();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let mut i = Intents::default();
    i.drained.insert("web".into(), Since { since: t(10) });
    let at = |held: &HeldConnections, a: &Applied, now| {
        step(&Inputs {
            config: &cfg,
            health: &h,
            intents: &i,
            applied: a,
            now,
            shutting_down: false,
            stopping_since: None,
            held,
            learning_flows: false,
        })
    };
    let none = HeldConnections::default();
    // Handoff (5 s) and graceful shutdown (30 s): not holding yet.
    for now in [t(10), t(15)] {
        let plan = at(&none, &a, now);
        assert_eq!(plan.vips[0].holding, None, "{:?}", plan.vips[0]);
        apply(&mut a, &plan);
    }
    // Withdrawn at 45 s: holding until a reading says none are left.
    let three = HeldConnections {
        counts: [("web".to_string(), 3)].into(),
        read_at: Some(t(45)),
    };
    let plan = at(&three, &a, t(45));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert_eq!(plan.vips[0].holding, Some(3));
    assert_eq!(plan.vips[1].holding, None, "dns is not held back");
    assert!(
        plan.vips[0].reason.contains(
            "still serving 3 established connections through the peer nodes (at most 20s more)"
        ),
        "{}",
        plan.vips[0].reason
    );
    assert_eq!(plan.wake_at, Some(t(65)), "the timeout");
    apply(&mut a, &plan);
    // A reading of none taken before the hold was `connection_idle` old
    // (10 + 40 = 50 s) proves nothing: a quiet connection may not have
    // sent a packet since.
    let zero_at = |s| HeldConnections {
        counts: Default::default(),
        read_at: Some(t(s)),
    };
    assert_eq!(at(&zero_at(48), &a, t(48)).vips[0].holding, Some(0));
    assert_eq!(at(&none, &a, t(55)).vips[0].holding, Some(0), "no reading");
    // One after: the drain is complete.
    let plan = at(&zero_at(50), &a, t(50));
    assert_eq!(plan.vips[0].holding, None);
    assert_eq!(plan.vips[0].reason, "drained by operator");
    // A node still learning its peers' flows (it started a moment ago)
    // holds all the same: learning only keeps routes from being announced.
    let learning = step(&Inputs {
        config: &cfg,
        health: &h,
        intents: &i,
        applied: &a,
        now: t(46),
        shutting_down: false,
        stopping_since: None,
        held: &three,
        learning_flows: true,
    });
    assert_eq!(learning.vips[0].holding, Some(3), "{:?}", learning.vips[0]);
    // Connections that never end: complete at the timeout.
    assert_eq!(at(&three, &a, t(64)).vips[0].holding, Some(3));
    assert_eq!(at(&three, &a, t(65)).vips[0].holding, None);
    // Without `connection_timeout` nothing is waited for.
    let off = edged_config::parse(&CONFIG.replace(
        "forwarder: {uplinks: [eth0]}",
        "forwarder: {uplinks: [eth0], handoff: {address: 192.0.2.2, peers: [192.0.2.6], time: 5s, connection_timeout: 0s}}",
    ))
    .unwrap();
    let plan = run(&off, &h, &i, &a, t(45));
    assert_eq!(plan.vips[0].holding, None);
}

#[test]
fn a_pending_check_keeps_a_serving_proxy_serving_and_an_announced_vip_announced() {
    let cfg = config();
    let mut a = Applied::default();
    let all = healthy(&[
        ("web", "a"),
        ("web", "b"),
        ("dns", "a"),
        ("dns", "b"),
        ("dns", "c"),
    ]);
    let first = run(&cfg, &all, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    assert_eq!(route(&first, "web"), RouteState::Announced);
    // A reload gave web/b a new check (pending): nothing changes.
    let mut h = all.clone();
    h.serve.get_mut("web").unwrap().remove("b");
    let plan = run(&cfg, &h, &Intents::default(), &a, t(1));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(route(&plan, "web"), RouteState::Announced);
    assert_eq!(plan.vips[0].serving, ["a", "b"]);
    // The check decides: down. Now web (min_healthy 2) goes.
    h.set("web", "b", Serve::NotServing("status 503".into()));
    let plan = run(&cfg, &h, &Intents::default(), &a, t(2));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "web".into(),
        proxies: vec![("a".into(), 100)]
    }));
}

#[test]
fn a_pending_check_never_announces_and_never_adds_a_proxy() {
    let cfg = config();
    // A cold start on a re-adopted data plane: tables are there, routes are
    // not, and no check has decided yet.
    let mut a = Applied::default();
    a.tables
        .insert("web".into(), vec![("a".into(), 100), ("b".into(), 50)]);
    let h = HealthView {
        running: true,
        ..Default::default()
    };
    let plan = run(&cfg, &h, &Intents::default(), &a, t(0));
    assert_eq!(route(&plan, "web"), RouteState::Withdrawn);
    assert!(
        !plan.actions.iter().any(|x| matches!(
            x,
            Action::Route {
                state: RouteState::Announced,
                ..
            }
        )),
        "{:?}",
        plan.actions
    );
    // web keeps its table; dns (nothing applied) gets an empty one.
    assert!(
        !plan
            .actions
            .iter()
            .any(|x| matches!(x, Action::SetTable { vip, .. } if vip == "web"))
    );
    assert!(plan.actions.contains(&Action::SetTable {
        vip: "dns".into(),
        proxies: vec![]
    }));
    // Once the checks pass, it is announced.
    let h = healthy(&[("web", "a"), ("web", "b")]);
    let plan = run(&cfg, &h, &Intents::default(), &a, t(1));
    assert_eq!(route(&plan, "web"), RouteState::Announced);
}

#[test]
fn a_graceful_stop_drains_every_vip_like_maintenance() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "a")]);
    let mut a = Applied::default();
    let first = run(&cfg, &h, &Intents::default(), &a, t(0));
    apply(&mut a, &first);
    let stop = |now| {
        step(&Inputs {
            config: &cfg,
            health: &h,
            intents: &Intents::default(),
            applied: &a,
            now,
            shutting_down: false,
            stopping_since: Some(t(10)),
            held: &HeldConnections::default(),
            learning_flows: false,
        })
    };
    let plan = stop(t(11));
    assert!(
        plan.vips.iter().all(|d| d.route == RouteState::Draining),
        "{:?}",
        plan.vips
    );
    assert!(
        plan.vips
            .iter()
            .all(|d| d.reason.starts_with("edged is stopping"))
    );
    assert_eq!(plan.wake_at, Some(t(40)), "withdraw after drain_time");
    let plan = stop(t(41));
    assert!(plan.vips.iter().all(|d| d.route == RouteState::Withdrawn));
}

#[test]
fn a_starting_node_learning_its_peers_flows_announces_nothing_new() {
    let cfg = config();
    let h = healthy(&[("web", "a"), ("web", "b"), ("dns", "c")]);
    let learning = |a: &Applied| {
        step(&Inputs {
            config: &cfg,
            health: &h,
            intents: &Intents::default(),
            applied: a,
            now: t(0),
            shutting_down: false,
            stopping_since: None,
            held: &HeldConnections::default(),
            learning_flows: true,
        })
    };
    // Healthy, but not announced while learning; tables are written.
    let plan = learning(&Applied::default());
    for vip in ["web", "dns"] {
        assert_eq!(route(&plan, vip), RouteState::Withdrawn, "{vip}");
    }
    let web = plan.vips.iter().find(|d| d.name == "web").unwrap();
    assert!(
        web.reason.contains("learning the peer nodes' flows"),
        "{}",
        web.reason
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::SetTable { vip, .. } if vip == "web"))
    );
    // A VIP already announced (a restart that kept its routes) stays.
    let mut a = Applied::default();
    apply(
        &mut a,
        &run(&cfg, &h, &Intents::default(), &Applied::default(), t(0)),
    );
    assert_eq!(route(&learning(&a), "web"), RouteState::Announced);
    // Learned: announced as usual.
    let plan = run(&cfg, &h, &Intents::default(), &Applied::default(), t(0));
    assert_eq!(route(&plan, "web"), RouteState::Announced);
}
