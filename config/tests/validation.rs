//! One rejection test per validation rule: each feeds YAML and checks that
//! the error names the field (and its line and column).

const BASE: &str = "\
node:
  router_id: 192.0.2.10
  asn: 65010
proxies:
  - name: px1
    address: 198.51.100.11
    delivery: host
  - name: px2
    address: 198.51.100.12
    delivery: host
vips:
  - name: web
    address: 203.0.113.10
    ports:
      - port: 80
    services:
      - name: http
        check:
          kind: http
          interval: 2s
          timeout: 1s
bgp:
  peers:
    - name: tor1
      address: 192.0.2.1
      asn: 65000
";

/// Replaces `from` in BASE (which must occur) with `to`.
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}

/// Parses `yaml`, expects a rejection whose rendering contains `path: ` and
/// `needle`, and returns it.
#[track_caller]
fn reject(yaml: &str, path: &str, needle: &str) -> String {
    let err = edged_config::parse(yaml).expect_err("config should be rejected");
    let text = err.to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{path}: ")))
        .unwrap_or_else(|| panic!("no error for {path} in:\n{text}"));
    assert!(line.contains(needle), "{line:?} lacks {needle:?}");
    assert!(line.contains("(line "), "{line:?} has no position");
    line.to_string()
}

#[test]
fn base_is_valid() {
    edged_config::parse(BASE).unwrap();
}

#[test]
fn position_is_the_value_of_the_field() {
    let y = with("interval: 2s", "interval: 0s");
    let line = reject(&y, "vips[0].services[0].check.interval", "greater than 0");
    assert!(line.ends_with("(line 20, column 21)"), "{line}");
}

#[test]
fn syntax_errors_name_the_field_and_position() {
    let y = with("asn: 65010", "asn: 65010\n  bogus: 1");
    let text = edged_config::parse(&y).unwrap_err().to_string();
    assert!(text.contains("bogus"), "{text}");
    assert!(text.contains("(line 4"), "{text}");

    let y = with("      - port: 80", "      - port: 70000");
    let text = edged_config::parse(&y).unwrap_err().to_string();
    assert!(text.starts_with("vips[0].ports[0].port: "), "{text}");
    assert!(text.contains("(line 15"), "{text}");

    let y = with("interval: 2s", "interval: 2");
    let text = edged_config::parse(&y).unwrap_err().to_string();
    assert!(
        text.starts_with("vips[0].services[0].check.interval: "),
        "{text}"
    );
    assert!(text.contains("no unit"), "{text}");

    let text = edged_config::parse("node: [").unwrap_err().to_string();
    assert!(text.contains("line"), "{text}");
}

#[test]
fn node_rules() {
    reject(
        &with("router_id: 192.0.2.10", "router_id: 0.0.0.0"),
        "node.router_id",
        "cannot be a router id",
    );
    reject(&with("asn: 65010", "asn: 0"), "node.asn", "reserved");
    reject(
        &with("asn: 65010", "asn: 65010\n  state_dir: var/lib"),
        "node.state_dir",
        "absolute",
    );
    reject(
        &with("asn: 65010", "asn: 65010\n  control_socket: x.sock"),
        "node.control_socket",
        "absolute",
    );
    reject(
        &with("asn: 65010", "asn: 65010\n  control_group: ''"),
        "node.control_group",
        "empty",
    );
    reject(
        &with(
            "asn: 65010",
            "asn: 65010\n  vip_interface: averyveryverylongname",
        ),
        "node.vip_interface",
        "interface name",
    );
    reject(
        &with("asn: 65010", "asn: 65010\n  shutdown_timeout: 0s"),
        "node.shutdown_timeout",
        "greater than 0",
    );
}

fn forwarder(extra: &str) -> String {
    let y = with(
        "proxies:",
        &format!("forwarder:\n  uplinks: [eth0]\n{extra}proxies:"),
    );
    y.replace(
        "    delivery: host\n",
        "    interface: eth1\n    mac: 02:00:5e:00:53:01\n",
    )
}

#[test]
fn forwarder_rules() {
    edged_config::parse(&forwarder("")).unwrap();
    reject(
        &forwarder("").replace("[eth0]", "[]"),
        "forwarder.uplinks",
        "at least one",
    );
    reject(
        &forwarder("").replace("[eth0]", "[eth0, eth0]"),
        "forwarder.uplinks[1]",
        "duplicate",
    );
    reject(
        &forwarder("  table_size: 65536\n"),
        "forwarder.table_size",
        "prime",
    );
    reject(
        &forwarder("  conntrack_entries: 0\n"),
        "forwarder.conntrack_entries",
        "greater than 0",
    );
    reject(
        &forwarder("  udp_idle_timeout: 0ms\n"),
        "forwarder.udp_idle_timeout",
        "greater than 0",
    );
    reject(
        &forwarder("  pin_dir: /tmp/x\n"),
        "forwarder.pin_dir",
        "/sys/fs/bpf",
    );
    let y = forwarder("").replacen("    interface: eth1\n", "", 1);
    reject(&y, "proxies[0].interface", "required");
    let y = forwarder("").replacen("    mac: 02:00:5e:00:53:01\n", "", 1);
    reject(&y, "proxies[0].mac", "required");
}

fn handoff(address: &str, peers: &str, time: &str) -> String {
    forwarder(&format!(
        "  handoff:\n    address: '{address}'\n    peers: {peers}\n    time: {time}\n"
    ))
}

#[test]
fn handoff_rules() {
    let cfg = edged_config::parse(&handoff("192.0.2.2", "[192.0.2.6, 192.0.2.10]", "3s")).unwrap();
    let h = cfg.forwarder.unwrap().handoff.unwrap();
    assert_eq!((h.peers.len(), h.time.as_secs()), (2, 3));
    let nine = format!(
        "[{}]",
        (10..19)
            .map(|i| format!("192.0.2.{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cases = [
        (
            "0.0.0.0",
            "[192.0.2.6]",
            "1s",
            "forwarder.handoff.address",
            "unicast",
        ),
        ("192.0.2.2", "[]", "1s", "forwarder.handoff.peers", "1 to 8"),
        (
            "192.0.2.2",
            &nine,
            "1s",
            "forwarder.handoff.peers",
            "1 to 8",
        ),
        (
            "192.0.2.2",
            "['2001:db8::6']",
            "1s",
            "forwarder.handoff.peers[0]",
            "family",
        ),
        (
            "192.0.2.2",
            "[192.0.2.6, 192.0.2.2]",
            "1s",
            "forwarder.handoff.peers[1]",
            "own",
        ),
        (
            "192.0.2.2",
            "[192.0.2.6, 192.0.2.6]",
            "1s",
            "forwarder.handoff.peers[1]",
            "duplicate",
        ),
        (
            "192.0.2.2",
            "[192.0.2.6]",
            "0s",
            "forwarder.handoff.time",
            "between",
        ),
        (
            "192.0.2.2",
            "[192.0.2.6]",
            "11m",
            "forwarder.handoff.time",
            "between",
        ),
    ];
    for (address, peers, time, path, needle) in cases {
        reject(&handoff(address, peers, time), path, needle);
    }
    // Flow sharing: the port (default 7575) and the peer-owned table.
    assert_eq!((h.port, h.key_file), (7575, None));
    reject(
        &forwarder("  handoff:\n    address: '192.0.2.2'\n    peers: [192.0.2.6]\n    port: 0\n"),
        "forwarder.handoff.port",
        "UDP port",
    );
    // Held connections after a drain: 30 s at most, 10 s of silence ends one.
    assert_eq!(
        (h.connection_timeout, h.connection_idle),
        (
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(10)
        )
    );
    let held = |field: &str, value: &str| {
        forwarder(&format!(
            "  handoff:\n    address: '192.0.2.2'\n    peers: [192.0.2.6]\n    {field}: {value}\n"
        ))
    };
    reject(
        &held("connection_timeout", "2h"),
        "forwarder.handoff.connection_timeout",
        "at most 1h",
    );
    reject(
        &held("connection_idle", "100ms"),
        "forwarder.handoff.connection_idle",
        "between 1s",
    );
    reject(
        &forwarder("  peer_flows: 100\n"),
        "forwarder.peer_flows",
        "between 1024",
    );
    reject(
        &forwarder("  peer_flows: 16777217\n"),
        "forwarder.peer_flows",
        "between 1024",
    );
}

#[test]
fn liveness_rules() {
    let y = |file: &str| {
        with(
            "    delivery: host\n  - name: px2",
            &format!("    delivery: host\n    liveness: {{pidfile: {file}}}\n  - name: px2"),
        )
    };
    let cfg = edged_config::parse(&y("/run/haproxy.pid")).unwrap();
    assert_eq!(
        cfg.proxies[0].liveness.as_ref().unwrap().pidfile,
        std::path::PathBuf::from("/run/haproxy.pid")
    );
    assert!(cfg.proxies[1].liveness.is_none(), "off by default");
    reject(
        &y("run/haproxy.pid"),
        "proxies[0].liveness.pidfile",
        "absolute path",
    );
}

#[test]
fn proxy_rules() {
    reject(
        &with("name: px2", "name: px1"),
        "proxies[1].name",
        "duplicate name",
    );
    reject(
        &with("name: px2", "name: Px2"),
        "proxies[1].name",
        "not a valid name",
    );
    reject(
        &with(
            "    delivery: host\n  - name: px2",
            "    delivery: host\n    mac: 02:00:00:00:00:01\n  - name: px2",
        ),
        "proxies[0].mac",
        "only valid",
    );
    reject(
        &with(
            "    delivery: host\n  - name: px2",
            "    delivery: host\n    interface: eth1\n  - name: px2",
        ),
        "proxies[0].interface",
        "only valid",
    );
    reject(
        &with(
            "    delivery: host\n  - name: px2",
            "    delivery: host\n    weight: 10001\n  - name: px2",
        ),
        "proxies[0].weight",
        "maximum",
    );
    reject(
        &with("address: 198.51.100.11", "address: 224.0.0.1"),
        "proxies[0].address",
        "unicast",
    );
}

#[test]
fn vip_rules() {
    reject(
        &with(
            "  - name: web",
            "  - name: w\n    address: 203.0.113.10\n    ports: [{port: 80}]\n    services: [{name: a, check: {kind: tcp, port: 80}}]\n  - name: web",
        ),
        "vips[1].address",
        "duplicate VIP",
    );
    reject(
        &with("address: 203.0.113.10", "address: 127.0.0.1"),
        "vips[0].address",
        "cannot be a VIP",
    );
    reject(
        &with("address: 203.0.113.10", "address: 2001:db8::10"),
        "vips[0].address",
        "no IPv6 peer",
    );
    reject(
        &with("    ports:\n      - port: 80", "    ports: []"),
        "vips[0].ports",
        "at least one port",
    );
    reject(
        &with("      - port: 80", "      - port: 0"),
        "vips[0].ports[0].port",
        "between 1 and 65535",
    );
    reject(
        &with("      - port: 80", "      - port: 80\n      - port: 80"),
        "vips[0].ports[1].port",
        "twice",
    );
    reject(
        &with(
            "    services:\n",
            "    proxies: [px1, px9]\n    services:\n",
        ),
        "vips[0].proxies[1]",
        "unknown proxy `px9`",
    );
    reject(
        &with(
            "    services:\n",
            "    proxies: [px1, px1]\n    services:\n",
        ),
        "vips[0].proxies[1]",
        "listed twice",
    );
    reject(
        &with("    services:\n", "    min_healthy: 0\n    services:\n"),
        "vips[0].min_healthy",
        "at least 1",
    );
    reject(
        &with("    services:\n", "    min_healthy: 3\n    services:\n"),
        "vips[0].min_healthy",
        "more than the 2 proxies",
    );
    let dup = "  - name: web\n    address: 203.0.113.11\n    ports: [{port: 80}]\n    services: [{name: a, check: {kind: tcp, port: 80}}]\n  - name: web";
    reject(
        &with("  - name: web", dup),
        "vips[1].name",
        "duplicate name `web`",
    );
    reject(
        &with(
            "      - name: http",
            "      - name: http\n        check: {kind: tcp, port: 1}\n      - name: http",
        ),
        "vips[0].services[1].name",
        "duplicate name",
    );
}

#[test]
fn empty_services_is_rejected() {
    let y = BASE.replace(
        "    services:\n      - name: http\n        check:\n          kind: http\n          interval: 2s\n          timeout: 1s\n",
        "    services: []\n",
    );
    reject(&y, "vips[0].services", "at least one service");
}

fn check(fields: &str) -> String {
    with(
        "          kind: http\n",
        &format!("          kind: http\n{fields}"),
    )
}

#[test]
fn check_rules() {
    let at = "vips[0].services[0].check";
    reject(
        &with("interval: 2s", "interval: 0s"),
        &format!("{at}.interval"),
        "greater than 0",
    );
    reject(
        &with("interval: 2s", "interval: 5ms"),
        &format!("{at}.interval"),
        "at least 10ms",
    );
    reject(
        &with("timeout: 1s", "timeout: 0s"),
        &format!("{at}.timeout"),
        "greater than 0",
    );
    reject(
        &with("timeout: 1s", "timeout: 2s"),
        &format!("{at}.timeout"),
        "less than the interval",
    );
    reject(
        &check("          fastinter: 5ms\n"),
        &format!("{at}.fastinter"),
        "between 10ms and the interval",
    );
    reject(
        &check("          fastinter: 3s\n"),
        &format!("{at}.fastinter"),
        "between 10ms and the interval",
    );
    reject(
        &check("          downinter: 2h\n"),
        &format!("{at}.downinter"),
        "between 10ms and 1h",
    );
    let ok = edged_config::parse(&check(
        "          fastinter: 50ms\n          downinter: 5s\n",
    ))
    .unwrap();
    let c = &ok.vips[0].services[0].check;
    assert_eq!(
        (c.fastinter, c.downinter),
        (
            std::time::Duration::from_millis(50),
            Some(std::time::Duration::from_secs(5))
        )
    );
    let default = edged_config::parse(&check("")).unwrap();
    let c = &default.vips[0].services[0].check;
    assert_eq!(
        (c.fastinter, c.downinter),
        (std::time::Duration::from_millis(10), None)
    );
    reject(
        &check("          rise: 0\n"),
        &format!("{at}.rise"),
        "between 1 and 100",
    );
    reject(
        &check("          fall: 101\n"),
        &format!("{at}.fall"),
        "between 1 and 100",
    );
    reject(
        &check("          port: 0\n"),
        &format!("{at}.port"),
        "between 1 and 65535",
    );
    reject(
        &check("          path: healthz\n"),
        &format!("{at}.path"),
        "must start with /",
    );
    reject(
        &check("          expect_status: [700]\n"),
        &format!("{at}.expect_status"),
        "not an HTTP status",
    );
    reject(
        &check("          expect_status: []\n"),
        &format!("{at}.expect_status"),
        "at least one",
    );
    reject(
        &check("          query_name: x\n"),
        &format!("{at}.query_name"),
        "only valid for kind dns",
    );
    reject(
        &check("          ca_file: /x\n"),
        &format!("{at}.ca_file"),
        "only valid for kind https",
    );
    reject(
        &check("          command: [/bin/true]\n"),
        &format!("{at}.command"),
        "only valid for kind exec",
    );
    let tcp = |extra: &str| {
        with(
            "          kind: http\n",
            &format!("          kind: tcp\n{extra}"),
        )
    };
    reject(&tcp(""), &format!("{at}.port"), "required for kind tcp");
    reject(
        &tcp("          port: 80\n          path: /x\n"),
        &format!("{at}.path"),
        "only valid for kind http or https",
    );
    let dns = |extra: &str| {
        with(
            "          kind: http\n",
            &format!("          kind: dns\n{extra}"),
        )
    };
    reject(
        &dns(""),
        &format!("{at}.query_name"),
        "required for kind dns",
    );
    reject(
        &dns("          query_name: a.example\n          expect_rcode: 16\n"),
        &format!("{at}.expect_rcode"),
        "0-15",
    );
    let exec = |extra: &str| {
        with(
            "          kind: http\n",
            &format!("          kind: exec\n{extra}"),
        )
    };
    reject(
        &exec(""),
        &format!("{at}.command"),
        "required for kind exec",
    );
    reject(
        &exec("          command: [check.sh]\n"),
        &format!("{at}.command"),
        "absolute path",
    );
    reject(
        &exec("          command: [/bin/true]\n          port: 80\n"),
        &format!("{at}.port"),
        "only valid for kind tcp",
    );
}

#[test]
fn bgp_rules() {
    reject(
        &with("bgp:\n", "bgp:\n  mode: external\n"),
        "bgp.external_socket",
        "required",
    );
    reject(
        &with("bgp:\n", "bgp:\n  mode: external\n"),
        "bgp.include_file",
        "required",
    );
    reject(
        &with("bgp:\n", "bgp:\n  include_file: /x\n"),
        "bgp.include_file",
        "only valid",
    );
    reject(
        &with("bgp:\n", "bgp:\n  external_socket: /x\n"),
        "bgp.external_socket",
        "only valid",
    );
    reject(
        &with("bgp:\n", "bgp:\n  drain_prepend: 9\n"),
        "bgp.drain_prepend",
        "between 0 and 8",
    );
    let peer = |extra: &str| with("      asn: 65000\n", &format!("      asn: 65000\n{extra}"));
    reject(
        &with("asn: 65000", "asn: 23456"),
        "bgp.peers[0].asn",
        "reserved",
    );
    reject(
        &peer("      hold_time: 2s\n"),
        "bgp.peers[0].hold_time",
        "between 3s",
    );
    reject(
        &peer("      keepalive: 10s\n"),
        "bgp.peers[0].keepalive",
        "less than hold_time",
    );
    reject(
        &peer("      source_address: 2001:db8::1\n"),
        "bgp.peers[0].source_address",
        "same address family",
    );
    reject(
        &peer("      multihop: 0\n"),
        "bgp.peers[0].multihop",
        "between 1 and 255",
    );
    reject(
        &peer("      multihop: 2\n      ttl_security: true\n"),
        "bgp.peers[0].ttl_security",
        "multihop",
    );
    let two = peer("    - name: tor1\n      address: 192.0.2.1\n      asn: 65000\n");
    reject(&two, "bgp.peers[1].name", "duplicate name");
    let two = peer("    - name: tor2\n      address: 192.0.2.1\n      asn: 65000\n");
    reject(&two, "bgp.peers[1].address", "duplicate peer");
    reject(
        &with("address: 192.0.2.1", "address: 0.0.0.0"),
        "bgp.peers[0].address",
        "unicast",
    );
}

#[test]
fn all_errors_are_reported_in_document_order() {
    let y = with("asn: 65010", "asn: 0").replace("timeout: 1s", "timeout: 3s");
    let err = edged_config::parse(&y).unwrap_err();
    let paths: Vec<_> = err.field_errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["node.asn", "vips[0].services[0].check.timeout"]);
}

#[test]
fn unknown_field_message_is_one_clean_line() {
    let y = with("asn: 65010", "asn: 65010\n  bogus: 1");
    let text = edged_config::parse(&y).unwrap_err().to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("node.bogus: unknown field `bogus`"),
        "{text}"
    );
    assert!(text.ends_with("(line 4, column 3)"), "{text}");
}

#[test]
fn names_that_collide_in_bird_are_rejected() {
    reject(
        &with("name: px2", "name: px_2").replace("name: px1", "name: px-2"),
        "proxies[1].name",
        "count as the same",
    );
}

#[test]
fn reuse_connection_is_for_http_only() {
    edged_config::parse(&check("          reuse_connection: false\n")).unwrap();
    let tcp = with(
        "          kind: http\n",
        "          kind: tcp\n          port: 80\n          reuse_connection: false\n",
    );
    reject(
        &tcp,
        "vips[0].services[0].check.reuse_connection",
        "only valid for kind http or https",
    );
}

#[test]
fn http2_is_for_http_only_and_keeps_its_connection() {
    edged_config::parse(&check("          http2: true\n")).unwrap();
    let tcp = with(
        "          kind: http\n",
        "          kind: tcp\n          port: 80\n          http2: true\n",
    );
    reject(
        &tcp,
        "vips[0].services[0].check.http2",
        "only valid for kind http or https",
    );
    reject(
        &check("          http2: true\n          reuse_connection: false\n"),
        "vips[0].services[0].check.reuse_connection",
        "http2 checks share one kept connection per proxy",
    );
}

#[test]
fn a_vip_has_its_own_no_healthy_policy() {
    let pass = with(
        "    address: 203.0.113.10\n",
        "    address: 203.0.113.10\n    no_healthy_proxy: pass\n",
    );
    let cfg = edged_config::parse(&pass).unwrap();
    assert_eq!(
        cfg.vips[0].no_healthy_proxy,
        Some(edged_config::NoHealthy::Pass)
    );
    assert_eq!(
        edged_config::parse(BASE).unwrap().vips[0].no_healthy_proxy,
        None
    );
    let bad = with(
        "    address: 203.0.113.10\n",
        "    address: 203.0.113.10\n    no_healthy_proxy: maybe\n",
    );
    reject(&bad, "vips[0].no_healthy_proxy", "maybe");
}
