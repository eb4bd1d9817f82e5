//! The real edged in a fresh network namespace: VIP addresses, drains that
//! survive a restart, reloads that keep the running config on error,
//! orderly shutdown. Needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::*;
use edged_testlab::poll_until;
use nix::sys::signal::Signal;

#[test]
fn drain_persists_across_restart() {
    let mut node = Node::new(VIPS);
    node.start();
    assert_eq!(node.vip("web")["drained"], false);
    let (ok, out, err) = node.ctl(&["drain", "web"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "web: drained");
    assert_eq!(node.vip("web")["drained"], true);
    assert_eq!(node.vip("api")["drained"], false);

    assert_eq!(
        node.stop_with(Signal::SIGTERM),
        Some(0),
        "log:\n{}",
        node.log()
    );
    node.start();
    assert_eq!(
        node.vip("web")["drained"],
        true,
        "drain lost across restart"
    );
    // Drain by address works too, and undrain clears it for the next start.
    let (ok, out, _) = node.ctl(&["undrain", "203.0.113.10"]);
    assert!(ok && out.contains("undrained"), "{out}");
    assert_eq!(node.stop_with(Signal::SIGTERM), Some(0));
    node.start();
    assert_eq!(node.vip("web")["drained"], false);
}

#[test]
fn maintenance_persists_and_marks_every_vip() {
    let mut node = Node::new(VIPS);
    node.start();
    assert!(node.ctl(&["maintenance", "on"]).0);
    assert_eq!(node.stop_with(Signal::SIGINT), Some(0));
    node.start();
    let st = node.json(&["status"]);
    assert!(st["maintenance_since"].as_u64().is_some(), "{st}");
    assert!(
        node.json(&["vips"])
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["drained"] == true)
    );
    assert!(node.ctl(&["maintenance", "off"]).0);
    assert!(node.json(&["status"])["maintenance_since"].is_null());
}

#[test]
fn unknown_vip_is_a_clear_error() {
    let mut node = Node::new(VIPS);
    node.start();
    let (ok, _, err) = node.ctl(&["drain", "nope"]);
    assert!(!ok);
    assert!(err.contains("no VIP named `nope`"), "{err}");
}

#[test]
fn reload_with_a_broken_file_keeps_the_running_config() {
    let mut node = Node::new(VIPS);
    node.start();
    let good = std::fs::read_to_string(node.config_path()).unwrap();
    std::fs::write(node.config_path(), good.replace("port: 443}", "port: 0}")).unwrap();

    let (ok, _, err) = node.ctl(&["reload"]);
    assert!(!ok, "reload of a broken file must fail");
    assert!(
        err.contains("vips[1].ports[0].port: must be between 1 and 65535 (line"),
        "{err}"
    );
    assert!(err.contains("running config kept"), "{err}");
    let st = node.json(&["status"]);
    assert_eq!(st["config_generation"], 1);
    assert_eq!(st["last_reload"]["ok"], false);
    assert_eq!(node.vip("api")["ports"][0], "443/tcp");

    // SIGHUP takes the same path: the broken file is rejected once more
    // (the failure count rises; `last_reload.at` is already set and has
    // whole seconds, so it cannot tell), the running config stays.
    let reloads = |result: &str| {
        let m = node.metrics();
        sample(
            &m,
            &format!("edged_config_reloads_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(reloads("failure"), Some(1.0));
    node.proc.as_ref().unwrap().signal(Signal::SIGHUP);
    assert!(
        poll_until(Duration::from_secs(5), || reloads("failure") == Some(2.0)),
        "SIGHUP did not reload; failures {:?}; log:\n{}",
        reloads("failure"),
        node.log()
    );
    let st = node.json(&["status"]);
    assert_eq!(st["config_generation"], 1);
    assert_eq!(st["last_reload"]["ok"], false);
    let error = st["last_reload"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("vips[1].ports[0].port: must be between 1 and 65535"),
        "{st}"
    );

    // A good change applies only the difference: a new VIP appears, the old stay.
    let added = good.replace(
        "bgp:",
        "  - name: img\n    address: 203.0.113.12\n    ports: [{port: 80}]\n    services: [{name: h, check: {kind: tcp, port: 80}}]\nbgp:",
    );
    std::fs::write(node.config_path(), added).unwrap();
    let (ok, out, err) = node.ctl(&["reload"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 VIPs added, 0 removed"), "{out}");
    assert_eq!(node.json(&["status"])["config_generation"], 2);
    assert!(poll_until(Duration::from_secs(5), || node
        .lo_addrs()
        .contains("203.0.113.12/32")));
    assert!(node.lo_addrs().contains("203.0.113.10/32"));

    // A good file on SIGHUP is applied too: img goes again.
    std::fs::write(node.config_path(), &good).unwrap();
    node.proc.as_ref().unwrap().signal(Signal::SIGHUP);
    assert!(
        poll_until(
            Duration::from_secs(5),
            || node.json(&["status"])["config_generation"] == 3
        ),
        "{}",
        node.json(&["status"])
    );
    assert_eq!(reloads("success"), Some(3.0), "the start and two reloads");
    assert!(poll_until(Duration::from_secs(5), || !node
        .lo_addrs()
        .contains("203.0.113.12/32")));
    assert!(node.lo_addrs().contains("203.0.113.10/32"));
}

#[test]
fn sigterm_removes_only_the_addresses_edged_added() {
    let mut node = Node::new(VIPS);
    // An operator's own address that is also a VIP: edged must leave it.
    node.ns
        .exec_ok(&["ip", "addr", "add", "203.0.113.11/32", "dev", "lo"]);
    node.start();
    assert!(poll_until(Duration::from_secs(5), || node
        .lo_addrs()
        .contains("203.0.113.10/32")));
    assert_eq!(node.json(&["status"])["components"][0]["state"], "ok");
    assert_eq!(
        node.stop_with(Signal::SIGTERM),
        Some(0),
        "log:\n{}",
        node.log()
    );
    let addrs = node.lo_addrs();
    assert!(
        !addrs.contains("203.0.113.10/32"),
        "edged's VIP left behind:\n{addrs}"
    );
    assert!(
        addrs.contains("203.0.113.11/32"),
        "operator's address removed:\n{addrs}"
    );
    assert!(!node.socket().exists(), "control socket left behind");
}

#[test]
fn restart_after_a_crash_adopts_and_cleans_its_addresses() {
    let mut node = Node::new(VIPS);
    node.start();
    assert!(poll_until(Duration::from_secs(5), || node
        .lo_addrs()
        .contains("203.0.113.11/32")));
    node.stop_with(Signal::SIGKILL);
    assert!(
        node.lo_addrs().contains("203.0.113.11/32"),
        "a crash leaves the address"
    );
    // The VIP is gone from the config of the next start: the leftover goes.
    node.write_config(&VIPS.replace("  - name: api\n    address: 203.0.113.11\n    ports: [{port: 443}]\n    services: [{name: tls, check: {kind: tcp, port: 443}}]\n", ""));
    node.start();
    assert!(
        poll_until(Duration::from_secs(5), || !node
            .lo_addrs()
            .contains("203.0.113.11/32")),
        "{}",
        node.lo_addrs()
    );
    assert!(node.lo_addrs().contains("203.0.113.10/32"));
}

#[test]
fn control_socket_is_0660() {
    use std::os::unix::fs::PermissionsExt;
    let mut node = Node::new(VIPS);
    node.start();
    let mode = std::fs::metadata(node.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn status_names_components_and_why_nothing_is_announced() {
    let mut node = Node::new(VIPS);
    node.start();
    let (ok, out, _) = node.ctl(&["status"]);
    assert!(ok);
    assert!(out.contains("VIPs: 0 announced of 2"), "{out}");
    assert!(out.contains("BIRD: 0 of 1 sessions established"), "{out}");
    assert!(out.contains("4 checks:"), "{out}");
    // No proxy is reachable from this namespace: withdrawn, and the reason
    // names each proxy.
    let v = node.vip("web");
    assert_eq!(v["route"], "withdrawn");
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("px1: ") && reason.contains("px2: "), "{v}");
}

#[test]
fn control_group_owns_the_socket_and_others_are_refused() {
    use std::os::unix::fs::MetadataExt;
    let body = VIPS.replacen("proxies:", "  control_group: nogroup\nproxies:", 1);
    // `node:` ends where VIPS begins, so the key lands in the node section.
    let mut node = Node::new(&body);
    node.start();
    let gid = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid;
    assert_eq!(
        std::fs::metadata(node.socket()).unwrap().gid(),
        gid.as_raw()
    );

    let as_user = |gid: &str| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                &format!("--regid={gid}"),
                "--clear-groups",
                EDGECTL,
                "--socket",
            ])
            .arg(node.socket())
            .arg("status")
            .output()
            .unwrap()
    };
    // A member of the group may use it.
    let out = as_user("65534");
    assert!(out.status.success(), "{out:?}");
    // Neither root nor in the group: a clear refusal, exit 69.
    let out = as_user("65533");
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("node.control_group"),
        "{err}"
    );
}
