//! `edged teardown` (run by the package on removal) against what a real
//! edged leaves after a planned restart with nobody to take over: BIRD
//! under its keeper, VIP addresses, the XDP program attached and pinned.
//! It refuses while edged runs, then removes exactly those, and leaves the
//! operator's own address. Needs root (namespaces, bpffs).

mod common;

use std::time::Duration;

use common::*;
use edged_testlab::lab::PinDir;
use edged_testlab::{poll_until, unique};

fn teardown(node: &Node) -> (Option<i32>, String) {
    let out = node
        .ns
        .command(EDGED)
        .args(["teardown", "--config"])
        .arg(node.config_path())
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn xdp_on(node: &Node, ifname: &str) -> bool {
    node.ns
        .exec_ok(&["ip", "-d", "link", "show", "dev", ifname])
        .contains("xdp")
}

#[test]
fn teardown_after_a_planned_restart_removes_bird_addresses_and_the_data_plane() {
    let pins = PinDir(format!("/sys/fs/bpf/{}", unique("edtd")).into());
    let body = format!(
        "  restart_grace: 60s\nforwarder:\n  uplinks: [up0]\n  xdp_mode: generic\n  pin_dir: {}\n{VIPS}",
        pins.0.display()
    );
    let mut node = Node::new(&body);
    node.ns.exec_ok(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1",
    ]);
    node.ns.exec_ok(&["ip", "link", "set", "up0", "up"]);
    node.ns.exec_ok(&["ip", "link", "set", "up1", "up"]);
    // An operator's own address that is also a VIP: it stays.
    node.ns
        .exec_ok(&["ip", "addr", "add", "203.0.113.11/32", "dev", "lo"]);
    node.start();
    assert!(poll_until(Duration::from_secs(5), || node
        .lo_addrs()
        .contains("203.0.113.10/32")));
    assert!(xdp_on(&node, "up0") && pins.0.join("link_skb_up0").exists());

    // While edged runs: refused, nothing touched.
    let (code, text) = teardown(&node);
    assert_eq!(code, Some(75), "{text}");
    assert!(text.contains("edged is running"), "{text}");
    assert!(xdp_on(&node, "up0") && pins.0.exists());

    // A planned restart that no edged takes over.
    let (ok, out, err) = node.ctl(&["stop", "--restart"]);
    assert!(ok, "{out}{err}\n{}", node.log());
    let exit = node
        .proc
        .take()
        .unwrap()
        .wait_timeout(Duration::from_secs(15))
        .expect("edged exits");
    assert!(exit.success(), "{exit}:\n{}", node.log());
    assert!(node.lo_addrs().contains("203.0.113.10/32"));
    assert!(xdp_on(&node, "up0") && pins.0.join("link_skb_up0").exists());

    let (code, text) = teardown(&node);
    println!("{text}");
    assert_eq!(code, Some(0), "{text}");
    for want in [
        "stopped BIRD (pid ",
        "removed VIP address 203.0.113.10 from lo",
        "detached XDP: removed ",
        &format!("removed {} (", pins.0.display()),
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let bird: i32 = text
        .split("stopped BIRD (pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("BIRD's pid");
    assert!(
        poll_until(Duration::from_secs(8), || !std::path::Path::new(&format!(
            "/proc/{bird}"
        ))
        .exists()),
        "BIRD {bird} still runs"
    );
    assert!(!xdp_on(&node, "up0"), "XDP still attached");
    assert!(!pins.0.exists(), "pins left");
    let addrs = node.lo_addrs();
    assert!(!addrs.contains("203.0.113.10/32"), "{addrs}");
    assert!(
        addrs.contains("203.0.113.11/32"),
        "operator's address removed"
    );

    // Twice is fine.
    let (code, text) = teardown(&node);
    assert_eq!(
        (code, text.trim()),
        (Some(0), "edged teardown: nothing to remove")
    );
}
