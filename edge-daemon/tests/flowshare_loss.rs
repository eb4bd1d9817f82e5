//! Lost flow-sharing datagrams are noticed and repaired, for real: node
//! Y's flow-sharing task runs over its own XDP maps in a network
//! namespace; the test plays peer X from a UDP socket on X's address and
//! sends signed datagrams whose sequence numbers skip some. Y counts the
//! missing ones and asks X for a full sync once (not again within 10 s);
//! a repeat, one out of order, and a jump of a restarted peer count none.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_daemon::flowshare::wire::{Key, Kind, Message};
use edge_daemon::flowshare::{Sharing, Spec, Stats};
use edged_ebpf::{Delivery, Forwarder, ForwarderSpec, HandoffSpec, ProxyTarget, XdpMode};
use edged_testlab::{NetNs, poll_until};

const X: &str = "192.0.2.1";
const Y: &str = "192.0.2.2";
const PORT: u16 = 7575;
const KEY: &[u8] = b"test flow-sharing key";

/// A pin dir removed on drop.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The kinds of the datagrams Y sent to X within `within`.
fn heard_from_y(sock: &UdpSocket, key: &Key, within: Duration) -> Vec<Kind> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(Message::decode(&buf[..n], Some(key)).expect("Y signs").kind);
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
    }
    out
}

fn scenario() {
    let pins = Pins(format!("/sys/fs/bpf/edfl{}", std::process::id()).into());
    let mut spec = ForwarderSpec::new(vec![], pins.0.clone());
    spec.mode = XdpMode::Generic;
    let mut y = Forwarder::open(&spec).expect("open Y's data plane");
    y.set_proxies(&[ProxyTarget {
        name: "p".into(),
        delivery: Delivery::L2 {
            ifname: "px0".into(),
            mac: [2, 0, 0, 0, 1, 1],
        },
    }])
    .expect("proxy");
    let (a, b): (IpAddr, IpAddr) = (X.parse().unwrap(), Y.parse().unwrap());
    y.set_handoff(Some(&HandoffSpec {
        local: b,
        peers: vec![a],
    }))
    .expect("handoff");
    let x = UdpSocket::bind(SocketAddr::new(a, PORT)).expect("X's socket");
    x.connect(SocketAddr::new(b, PORT)).unwrap();
    let key = Key::new(KEY);
    let send = |seq: u64, kind: Kind| {
        let m = Message { seed: 0, seq, kind };
        x.send(&m.encode(Some(&key))).expect("send to Y");
    };

    // Y's task runs on the worker (started from this thread: in the
    // namespace); the test blocks this one while it waits.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let peer = |s: &Arc<Mutex<Stats>>| s.lock().unwrap().peers[&a].clone();
    rt.block_on(async {
        let _y = Sharing::run(
            Spec {
                local: b,
                peers: vec![a],
                port: PORT,
                seed: 0,
                pin_dir: pins.0.clone(),
                key_file: None,
            },
            Some(KEY.to_vec()),
            &stats,
        );
        let until = |what: &str, f: &dyn Fn() -> bool| {
            assert!(
                poll_until(Duration::from_secs(5), f),
                "{what}: {:?}",
                peer(&stats)
            );
        };
        // Y asks X for its flows as it starts; X answers.
        let kinds = heard_from_y(&x, &key, Duration::from_secs(5));
        assert!(kinds.contains(&Kind::SyncRequest), "{kinds:?}");
        send(100, Kind::Flows(vec![0x8000_0000_0000_0011]));
        send(101, Kind::SyncEnd);
        until("synced", &|| peer(&stats).synced);
        assert_eq!(peer(&stats).datagrams_lost, 0);

        // 102 and 103 never arrive: two lost, one full sync asked.
        send(104, Kind::Flows(vec![0x8000_0000_0000_0012]));
        until("the loss counted", &|| peer(&stats).datagrams_lost == 2);
        let kinds = heard_from_y(&x, &key, Duration::from_secs(5));
        assert_eq!(kinds, vec![Kind::SyncRequest], "one repair");
        assert_eq!(peer(&stats).repairs, 1);

        // A repeat and a late one count nothing; another gap within 10 s
        // is counted but not repaired again.
        send(104, Kind::Flows(vec![]));
        send(103, Kind::Flows(vec![]));
        send(108, Kind::Flows(vec![]));
        until("all five heard", &|| peer(&stats).datagrams_received == 6);
        let p = peer(&stats);
        assert_eq!((p.datagrams_lost, p.repairs), (5, 1), "{p:?}");
        // X started again: its numbers jump ahead by its clock.
        send(108 + (1 << 30), Kind::Flows(vec![]));
        send(109 + (1 << 30), Kind::Flows(vec![]));
        until("heard", &|| peer(&stats).datagrams_received == 8);
        assert_eq!(peer(&stats).datagrams_lost, 5, "a restart is no loss");
        assert!(peer(&stats).last_heard.is_some());
    });
    drop(y);
}

#[test]
fn lost_flow_sharing_datagrams_are_counted_and_repaired_by_one_full_sync() {
    let ns = NetNs::new("edfl");
    for a in [X, Y] {
        ns.exec_ok(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
    ns.exec_ok(&[
        "ip", "link", "add", "px0", "type", "veth", "peer", "name", "px0p",
    ]);
    ns.exec_ok(&["ip", "link", "set", "px0", "up"]);
    ns.exec_ok(&["ip", "link", "set", "px0p", "up"]);
    edged_testlab::lab::traffic::in_netns(&ns.path(), scenario);
}
