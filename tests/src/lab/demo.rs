//! `edged-lab demo`: the lab, step by step, for someone who has never seen
//! edged. Prints what it does and what it measured; a wait that times out
//! says so ("timed out after N ms") instead of a time, the demo goes on,
//! and it fails at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Lab, traffic};
use crate::poll_until;

fn say(step: &str) {
    println!("\n== {step}");
}

fn edgectl(bin: &Path, sock: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("edgectl");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn json(bin: &Path, sock: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-o", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&edgectl(bin, sock, &full)).unwrap_or(serde_json::Value::Null)
}

fn serving(bin: &Path, sock: &Path, vip: usize) -> usize {
    json(bin, sock, &["vips"])[vip]["serving"]
        .as_array()
        .map_or(0, |a| a.len())
}

/// The demo's waits: each gives how long its condition took to come true,
/// or prints that it timed out; any timeout fails the demo at the end.
#[derive(Default)]
struct Waits {
    timed_out: Vec<String>,
}

impl Waits {
    /// Polls `cond` for up to `limit`; the time since `since` if it came
    /// true.
    fn until(
        &mut self,
        what: &str,
        since: Instant,
        limit: Duration,
        cond: impl FnMut() -> bool,
    ) -> Option<Duration> {
        if poll_until(limit, cond) {
            return Some(since.elapsed());
        }
        println!("{what}: timed out after {} ms", since.elapsed().as_millis());
        self.timed_out.push(what.to_string());
        None
    }

    /// The demo's result: an error naming every wait that timed out.
    fn result(self) -> Result<(), String> {
        if self.timed_out.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} waits timed out: {}",
            self.timed_out.len(),
            self.timed_out.join("; ")
        ))
    }
}

/// Whether the ToR's route to the IPv4 VIP has `n` next hops.
fn ecmp(lab: &Lab, n: usize) -> bool {
    crate::net::nexthops(&lab.tor_ns, "203.0.113.10").len() == n
}

fn print_spread(t: &traffic::Tally) {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for (proxy, n) in &t.by_proxy {
        *per_node
            .entry(proxy.split('-').next().unwrap_or("?"))
            .or_default() += n;
    }
    let total = t.ok().max(1) as f64;
    for (node, n) in &per_node {
        println!(
            "  {node}: {n:4} requests ({:.0} %)",
            100.0 * *n as f64 / total
        );
        for (proxy, m) in t.by_proxy.iter().filter(|(p, _)| p.starts_with(node)) {
            println!("    {proxy}: {m:4} ({:.0} %)", 100.0 * *m as f64 / total);
        }
    }
    println!("  failed requests: {}", t.failed.len());
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &t.failed {
        *reasons.entry(f.as_str()).or_default() += 1;
    }
    for (why, n) in reasons {
        println!("    {n} x {why}");
    }
}

/// Runs the demo on a lab that is up with edged started on every node.
pub fn run(lab: &mut Lab, edgectl_bin: &Path) -> Result<(), String> {
    let v4: SocketAddr = "203.0.113.10:80".parse().unwrap();
    let sock0 = lab.socket(0);
    let mut waits = Waits::default();
    say("edged on every node: waiting for the health checks to pass");
    let t0 = Instant::now();
    let all_up = poll_until(Duration::from_secs(20), || {
        (0..lab.nodes.len())
            .all(|i| serving(edgectl_bin, &lab.socket(i), 0) == lab.spec.proxies_per_node)
    });
    if !all_up {
        return Err(format!(
            "proxies never became healthy (timed out after 20000 ms):\n{}",
            lab.node_log(0)
        ));
    }
    println!("all proxies serving after {} ms", t0.elapsed().as_millis());
    println!("{}", edgectl(edgectl_bin, &sock0, &["status"]));
    println!("{}", edgectl(edgectl_bin, &sock0, &["vips"]));

    say("the top-of-rack learned each VIP from both nodes over BGP: its ECMP route (kernel table)");
    let t0 = Instant::now();
    let both = |lab: &Lab| {
        lab.spec.vips.iter().all(|v| {
            crate::net::nexthops(&lab.tor_ns, &v.address.to_string()).len() == lab.nodes.len()
        })
    };
    if !poll_until(Duration::from_secs(20), || both(lab)) {
        return Err(
            "the ToR never learned the VIP from every node (timed out after 20000 ms)".into(),
        );
    }
    println!(
        "(sessions up and routes learned {} ms after the checks passed)",
        t0.elapsed().as_millis()
    );
    for v in &lab.spec.vips {
        let fam = if v.address.is_ipv4() { "-4" } else { "-6" };
        print!(
            "{}",
            lab.tor_ns
                .exec_ok(&["ip", fam, "route", "show", &v.address.to_string()])
        );
    }
    println!("{}", edgectl(edgectl_bin, &sock0, &["peers"]));

    say("1,000 HTTP requests from 64 client addresses to 203.0.113.10");
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 1000);
    print_spread(&t);

    say("fail a proxy: stop nginx on edge1-px1");
    let t0 = Instant::now();
    lab.nodes[0].proxies[0].nginx.stop();
    let out = waits.until(
        "edge1 taking px1 out of its table",
        t0,
        Duration::from_secs(10),
        || serving(edgectl_bin, &sock0, 0) == lab.spec.proxies_per_node - 1,
    );
    if let Some(d) = out {
        println!(
            "edge1 took px1 out of its table after {} ms (interval 250ms, fall 3)",
            d.as_millis()
        );
    }
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 1000);
    print_spread(&t);

    say(
        "canary: on edge2, edgectl weight px1 1 and px2 9 (px1 gets about 10 % of edge2's new flows)",
    );
    let sock1 = lab.socket(1);
    edgectl(edgectl_bin, &sock1, &["weight", "px1", "1"]);
    edgectl(edgectl_bin, &sock1, &["weight", "px2", "9"]);
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 1000);
    print_spread(&t);
    println!("{}", edgectl(edgectl_bin, &sock1, &["proxies"]));

    edgectl(edgectl_bin, &sock1, &["weight", "px1", "reset"]);
    edgectl(edgectl_bin, &sock1, &["weight", "px2", "reset"]);

    say("fail edge2's service (both proxies answer 500): the ToR drops edge2");
    let t0 = Instant::now();
    for p in &lab.nodes[1].proxies {
        p.nginx.set_health(crate::Health::Error);
    }
    if let Some(d) = waits.until(
        "the ToR's route losing edge2",
        t0,
        Duration::from_secs(10),
        || ecmp(lab, 1),
    ) {
        println!("ToR route lost edge2 after {} ms", d.as_millis());
    }
    print!(
        "{}",
        lab.tor_ns.exec_ok(&["ip", "route", "show", "203.0.113.10"])
    );
    let t = traffic::run(&lab.client.path(), lab.sources(false), v4, 1000);
    print_spread(&t);
    for p in &lab.nodes[1].proxies {
        p.nginx.set_health(crate::Health::Ok);
    }
    waits.until(
        "edge2 back in the ToR's route",
        Instant::now(),
        Duration::from_secs(10),
        || ecmp(lab, 2),
    );

    say(
        "drain edge2 under load from 4 clients: edgectl maintenance on (1 s handing new connections to edge1, GRACEFUL_SHUTDOWN, withdraw)",
    );
    let handoff = |i: usize, dir: &str| {
        lab.metric(
            i,
            &format!("edged_xdp_handoff_packets_total{{direction=\"{dir}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let before = handoff(1, "out");
    let load = traffic::Load::start(&lab.client.path(), lab.sources(false), v4, 4);
    let t0 = Instant::now();
    println!("{}", edgectl(edgectl_bin, &sock1, &["maintenance", "on"]));
    println!("{}", edgectl(edgectl_bin, &sock1, &["vips"]));
    if let Some(d) = waits.until(
        "the ToR's route leaving edge2",
        t0,
        Duration::from_secs(10),
        || ecmp(lab, 1),
    ) {
        println!("the ToR's route left edge2 after {} ms", d.as_millis());
    }
    waits.until("edge2 withdrawing", t0, Duration::from_secs(10), || {
        edgectl(edgectl_bin, &sock1, &["-o", "json", "vips"]).contains("\"withdrawn\"")
    });
    let t = load.stop();
    print_spread(&t);
    // edged refreshes the data plane's counters every 5 s.
    if waits
        .until(
            "edge2's handoff counter",
            Instant::now(),
            Duration::from_secs(12),
            || handoff(1, "out") > before,
        )
        .is_some()
    {
        println!(
            "edge2's XDP program handed {} packets of new connections to edge1 before its route left",
            handoff(1, "out") - before
        );
    }
    println!("{}", edgectl(edgectl_bin, &sock1, &["vips"]));
    println!("{}", edgectl(edgectl_bin, &sock1, &["maintenance", "off"]));
    waits.until(
        "edge2 back in the ToR's route after maintenance",
        Instant::now(),
        Duration::from_secs(10),
        || ecmp(lab, 2),
    );

    say("kill -9 edged on edge1 under load: its BIRD dies with it, the ToR withdraws");
    let (path, sources) = (lab.client.path(), lab.sources(false));
    let load = std::thread::spawn(move || traffic::run(&path, sources, v4, 3000));
    let t0 = Instant::now();
    if let Some(p) = &lab.nodes[0].edged {
        p.signal(nix::sys::signal::Signal::SIGKILL);
    }
    if let Some(d) = waits.until(
        "the ToR's route losing edge1 after the kill",
        t0,
        Duration::from_secs(10),
        || ecmp(lab, 1),
    ) {
        println!("ToR route lost edge1 {} ms after the kill", d.as_millis());
    }
    let t = load.join().map_err(|_| "load thread")?;
    print_spread(&t);
    lab.nodes[0].edged = None;

    say("restart edged on edge1: it rejoins once its checks pass");
    let t0 = Instant::now();
    lab.start_node(0);
    if let Some(d) = waits.until(
        "edge1 back in the ECMP route",
        t0,
        Duration::from_secs(20),
        || ecmp(lab, 2),
    ) {
        println!("edge1 back in the ECMP route after {} ms", d.as_millis());
    }
    print!(
        "{}",
        lab.tor_ns.exec_ok(&["ip", "route", "show", "203.0.113.10"])
    );
    waits.result()
}
