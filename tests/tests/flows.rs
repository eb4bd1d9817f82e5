//! Connections survive planned changes between nodes: the scenario of
//! `edged_testlab::lab::planned` (maintenance on and off, a planned
//! restart, a graceful stop and a new start, kill -9 and a new start, a
//! third node joining) with 300 long-lived keep-alive connections, to the
//! IPv4 and the IPv6 VIP. Each
//! operation must reset, end, stall or move none of them, and none may
//! have to be opened again.

use edged_testlab::lab::planned::{self, Operation};

const CONNS: usize = 300;

#[test]
fn long_lived_connections_survive_maintenance_restart_and_rejoin() {
    let mut seen = Vec::new();
    planned::run(CONNS, |op: &Operation<'_>| {
        println!("{op}");
        let t = op.tally;
        assert_eq!(
            t.broken(),
            0,
            "{op}: {:?}",
            &t.errors[..t.errors.len().min(3)]
        );
        assert_eq!(t.opened, CONNS, "{op}: connections were re-opened");
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
            "first_join"
        ]
    );
}
