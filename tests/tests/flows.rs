//! Connections survive planned changes between nodes: the scenario of
//! `edged_testlab::lab::planned` (maintenance on and off, a planned
//! restart, a graceful stop and a new start, kill -9 and a new start, a
//! third node joining, that node falling off the network) with 300
//! long-lived keep-alive connections, to the IPv4 and the IPv6 VIP. Each
//! planned operation must reset, end, stall or move none of them, and none
//! may have to be opened again; when a node is lost, only the connections
//! it served may fail.

use edged_testlab::lab::planned::{self, Operation};

const CONNS: usize = 300;

#[test]
fn long_lived_connections_survive_maintenance_restart_and_rejoin() {
    let mut seen = Vec::new();
    planned::run(CONNS, |op: &Operation<'_>| {
        println!("{op}");
        let t = op.tally;
        if let Some(lost) = op.lost {
            // The lost node's connections go with it; no other's may.
            println!(
                "  failed: {} of those {lost} served, {} of the others'",
                op.broken_on(lost),
                op.broken_elsewhere()
            );
            assert!(op.broken_on(lost) > 0, "{op}: {lost} held no connection");
            assert_eq!(op.broken_elsewhere(), 0, "{op}: {:?}", t.broken_by_proxy);
        } else {
            assert_eq!(
                t.broken(),
                0,
                "{op}: {:?}",
                &t.errors[..t.errors.len().min(3)]
            );
            assert_eq!(t.opened, CONNS, "{op}: connections were re-opened");
        }
        seen.push(op.name);
    });
    assert_eq!(
        seen,
        [
            "maintenance_on",
            "maintenance_off",
            "restart",
            "graceful_stop",
            "start_after_stop",
            "kill9_and_start",
            "first_join",
            "node_crash"
        ]
    );
}
