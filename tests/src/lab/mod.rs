//! The lab: a top-of-rack, edge nodes running the real `edged`, proxies
//! running real nginx, and a client, each in its own network namespace,
//! built from a [`Spec`]. Dropping the [`Lab`] tears everything down;
//! `edged-lab cleanup` removes what a crashed run left (namespaces named
//! `edl<pid>x<n>` of a pid no longer alive).

pub mod conns;
pub mod demo;
pub mod detect;
mod ops;
pub mod planned;
pub mod spec;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub use ops::{RouteWatch, Watched, edged_check};
pub use spec::Spec;
use spec::{CLIENT_GW, client_source, proxy_link, tor_link};

use crate::{BirdTor, Neighbor, NetNs, Nginx, Proc, TempDir, net, poll_until};

/// Prefix of every lab namespace (for `cleanup`).
pub const NS_PREFIX: &str = "edl";

/// One edge node.
/// Fields drop in order: processes before their namespace.
pub struct Node {
    pub name: String,
    pub edged: Option<Proc>,
    pub proxies: Vec<Proxy>,
    /// edged's bpffs directory (removed after edged is gone).
    pub pins: PinDir,
    pub ns: NetNs,
    pub dir: TempDir,
    /// The node's address on its ToR link.
    pub uplink_v4: String,
}

/// One proxy behind a node.
pub struct Proxy {
    pub name: String,
    pub nginx: Nginx,
    pub ns: NetNs,
    pub address_v4: String,
}

/// A running lab. Field order is drop order: processes before namespaces.
pub struct Lab {
    pub spec: Spec,
    pub tor: BirdTor,
    pub nodes: Vec<Node>,
    pub client: NetNs,
    _tor_xdp: net::XdpPass,
    pub tor_ns: NetNs,
    edged_bin: PathBuf,
    _work: TempDir,
}

impl Lab {
    /// Builds the topology and starts the ToR and the proxies; edged is
    /// started per node by [`Lab::start_node`].
    pub fn up(spec: Spec, edged_bin: &Path) -> Lab {
        let tor_ns = NetNs::new(NS_PREFIX);
        let client = NetNs::new(NS_PREFIX);
        // Hash on the 5-tuple, as a switch does. Policy 1 would reuse a
        // locally sent packet's socket hash (the client's packets cross
        // veths with it): a flow's node would be random per socket, and
        // move after a retransmission timeout re-rolls that hash.
        for key in [
            "net.ipv4.fib_multipath_hash_policy=3",
            "net.ipv6.fib_multipath_hash_policy=3",
            "net.ipv4.fib_multipath_hash_fields=0x0037",
            "net.ipv6.fib_multipath_hash_fields=0x0037",
        ] {
            tor_ns.exec_ok(&["sysctl", "-qw", key]);
        }
        net::forwarding(&tor_ns);
        net::veth(&tor_ns, "client", &client, "uplink");
        net::addr(&tor_ns, "client", &format!("{}/24", CLIENT_GW.0));
        net::addr(&tor_ns, "client", &format!("{}/64", CLIENT_GW.1));
        for s in 0..spec.client_sources {
            let (v4, v6) = client_source(s);
            net::addr(&client, "uplink", &format!("{v4}/24"));
            net::addr(&client, "uplink", &format!("{v6}/64"));
        }
        client.exec_ok(&["ip", "route", "add", "default", "via", CLIENT_GW.0]);
        client.exec_ok(&["ip", "-6", "route", "add", "default", "via", CLIENT_GW.1]);

        let work = TempDir::new("lab");
        let xdp_pass = net::xdp_pass_object(work.path());
        let mut nodes = Vec::new();
        let mut neighbors = Vec::new();
        for i in 0..spec.nodes {
            let node = Self::build_node(&spec, &tor_ns, i);
            let link = tor_link(i);
            neighbors.push(Neighbor {
                name: format!("edge{}", i + 1),
                address: link.v4.1.parse().unwrap(),
                asn: spec.node_asn,
            });
            neighbors.push(Neighbor {
                name: format!("edge{}_v6", i + 1),
                address: link.v6.1.parse().unwrap(),
                asn: spec.node_asn,
            });
            nodes.push(node);
        }
        // The ToR's side of each node link takes the frames the node's XDP
        // program sends back (handoff, XDP_TX).
        let tor_links: Vec<String> = (1..=spec.nodes).map(|i| format!("e{i}")).collect();
        let tor_xdp = net::XdpPass::attach(&tor_ns, &tor_links, &xdp_pass);
        let tor = BirdTor::start(&tor_ns, CLIENT_GW.0, spec.tor.asn, &neighbors);
        Lab {
            spec,
            tor,
            nodes,
            client,
            _tor_xdp: tor_xdp,
            tor_ns,
            edged_bin: edged_bin.to_owned(),
            _work: work,
        }
    }

    fn build_node(spec: &Spec, tor_ns: &NetNs, i: usize) -> Node {
        let name = format!("edge{}", i + 1);
        let ns = NetNs::new(NS_PREFIX);
        net::forwarding(&ns);
        let link = tor_link(i);
        let tor_if = format!("e{}", i + 1);
        net::veth(tor_ns, &tor_if, &ns, "uplink");
        // The fabric carries handed-off packets (20 bytes of outer header
        // more than the clients send).
        for (n, ifname) in [(tor_ns, tor_if.as_str()), (&ns, "uplink")] {
            n.exec_ok(&["ip", "link", "set", ifname, "mtu", "1600"]);
        }
        net::addr(tor_ns, &format!("e{}", i + 1), &format!("{}/30", link.v4.0));
        net::addr(tor_ns, &format!("e{}", i + 1), &format!("{}/64", link.v6.0));
        net::addr(&ns, "uplink", &format!("{}/30", link.v4.1));
        net::addr(&ns, "uplink", &format!("{}/64", link.v6.1));
        ns.exec_ok(&["ip", "route", "add", "default", "via", &link.v4.0]);
        ns.exec_ok(&["ip", "-6", "route", "add", "default", "via", &link.v6.0]);
        let mut proxies = Vec::new();
        for j in 0..spec.proxies_per_node {
            let pl = proxy_link(i, j, spec.proxies_per_node);
            let pns = NetNs::new(NS_PREFIX);
            let ifname = format!("p{}", j + 1);
            net::veth(&ns, &ifname, &pns, "eth0");
            // Frames redirected into a veth need GRO (or XDP) on the peer.
            pns.exec_ok(&["ethtool", "-K", "eth0", "gro", "on"]);
            net::addr(&ns, &ifname, &format!("{}/30", pl.v4.0));
            net::addr(&ns, &ifname, &format!("{}/64", pl.v6.0));
            net::addr(&pns, "eth0", &format!("{}/30", pl.v4.1));
            net::addr(&pns, "eth0", &format!("{}/64", pl.v6.1));
            pns.exec_ok(&["ip", "route", "add", "default", "via", &pl.v4.0]);
            pns.exec_ok(&["ip", "-6", "route", "add", "default", "via", &pl.v6.0]);
            for v in &spec.vips {
                let plen = if v.address.is_ipv4() { 32 } else { 128 };
                net::addr(&pns, "lo", &format!("{}/{plen}", v.address));
            }
            let pname = format!("{name}-px{}", j + 1);
            let port = spec.vips.first().map_or(80, |v| v.port);
            let nginx = Nginx::start(&pns, &pname, port);
            proxies.push(Proxy {
                name: pname,
                nginx,
                ns: pns,
                address_v4: pl.v4.1,
            });
        }
        let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/{}", ns.name())));
        Node {
            name,
            edged: None,
            proxies,
            pins,
            ns,
            dir: TempDir::new("labnode"),
            uplink_v4: link.v4.1,
        }
    }

    /// edged's config for node `i`.
    pub fn node_config(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let link = tor_link(i);
        let mut y = format!(
            "node:\n  router_id: {rid}\n  asn: {asn}\n  state_dir: {dir}/state\n  control_socket: {dir}/edged.sock\n  drain_time: 2s\n  vip_interface: null\n",
            rid = link.v4.1,
            asn = self.spec.node_asn,
            dir = n.dir.path().display()
        );
        if let Some(mode) = &self.spec.xdp {
            y += &format!(
                "forwarder:\n  uplinks: [uplink]\n  xdp_mode: {mode}\n  pin_dir: {}\n",
                n.pins.0.display()
            );
            let peers: Vec<String> = (0..self.nodes.len())
                .filter(|&k| k != i)
                .map(|k| tor_link(k).v4.1)
                .collect();
            if !peers.is_empty() {
                // Flow-sharing messages signed with a key every node has.
                let key = n.dir.path().join("flows.key");
                std::fs::write(&key, "lab flow-sharing key, not a secret\n").unwrap();
                std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .unwrap();
                y += &format!(
                    "  handoff: {{address: {}, peers: [{}], time: 1s, connection_idle: 2s, key_file: {}}}\n",
                    link.v4.1,
                    peers.join(", "),
                    key.display()
                );
            }
        }
        y += "proxies:\n";
        for (j, p) in n.proxies.iter().enumerate() {
            let mac = net::mac(&p.ns, "eth0");
            let liveness = if self.spec.liveness {
                format!(", liveness: {{pidfile: {}}}", p.nginx.pid_file().display())
            } else {
                String::new()
            };
            y += &format!(
                "  - {{name: px{}, address: {}, interface: p{}, mac: '{mac}'{liveness}}}\n",
                j + 1,
                p.address_v4,
                j + 1
            );
        }
        y += "vips:\n";
        for v in &self.spec.vips {
            y += &format!(
                "  - name: {}\n    address: '{}'\n    ports: [{{port: {}}}{}]\n    services: [{{name: http, check: {{kind: http, port: {}, path: /healthz, {}}}}}]\n",
                v.name,
                v.address,
                v.port,
                v.udp_port
                    .map_or(String::new(), |u| format!(", {{port: {u}, protocol: udp}}")),
                v.port,
                self.spec.check
            );
        }
        y += &format!(
            "bgp:\n  peers:\n    - {{name: tor, address: {}, asn: {}}}\n    - {{name: tor_v6, address: '{}', asn: {}}}\n",
            link.v4.0, self.spec.tor.asn, link.v6.0, self.spec.tor.asn
        );
        y
    }

    /// Starts (or restarts) edged on node `i`; waits until it answers.
    pub fn start_node(&mut self, i: usize) {
        let cfg = self.node_config(i);
        let n = &mut self.nodes[i];
        std::fs::write(n.dir.path().join("edged.yaml"), cfg).unwrap();
        let log = std::fs::File::create(n.dir.path().join("edged.log")).unwrap();
        let mut cmd = n.ns.command(&self.edged_bin);
        cmd.arg("--config")
            .arg(n.dir.path().join("edged.yaml"))
            .stdout(Stdio::null())
            .stderr(log);
        n.edged = Some(Proc::spawn(cmd));
        let sock = n.dir.path().join("edged.sock");
        let up = poll_until(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        let name = n.name.clone();
        assert!(up, "edged on {name} did not start:\n{}", self.node_log(i));
    }

    /// Node `i`'s control socket.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.path().join("edged.sock")
    }

    /// Node `i`'s edged log.
    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.path().join("edged.log")).unwrap_or_default()
    }
}

/// A node's bpffs pin directory, removed on drop (detaching its XDP link).
pub struct PinDir(pub PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether a process whose pid is `pid` modulo 10^6 runs.
fn run_alive(pid: u32) -> bool {
    std::fs::read_dir("/proc").is_ok_and(|d| {
        d.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|p| p % 1_000_000 == pid)
        })
    })
}

/// Removes the lab namespaces (and the processes in them) that a run which
/// is no longer alive left, and those of the process `own` (a run tearing
/// itself down); another run's live lab is left alone. A namespace's name
/// carries the pid of the run that made it, modulo 10^6 (`edl<pid>x<n>`).
pub fn cleanup(own: Option<u32>) -> usize {
    let out = crate::sh_ok("ip", &["netns", "list"]);
    let mut n = 0;
    for name in out.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Some(pid) == own || !run_alive(pid) {
            if let Ok(pids) = std::process::Command::new("ip")
                .args(["netns", "pids", name])
                .output()
            {
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .status();
            n += 1;
        }
    }
    n
}

// === kernel-routing baseline ===

type Pick = fn(&spec::Link) -> &String;

fn family(a: std::net::IpAddr) -> (&'static str, u8, Pick) {
    if a.is_ipv4() {
        ("-4", 32, |l| &l.v4.1)
    } else {
        ("-6", 128, |l| &l.v6.1)
    }
}

fn multipath(ns: &NetNs, fam: &str, prefix: &str, hops: impl Iterator<Item = String>) {
    let mut args: Vec<String> = ["ip", fam, "route", "replace", prefix]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for h in hops {
        args.extend(["nexthop".into(), "via".into(), h]);
    }
    ns.exec_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

impl Lab {
    /// Routes every VIP with plain kernel ECMP instead of BGP and XDP: the
    /// ToR over all nodes, each node over its proxies. The baseline the
    /// XDP path is measured against; also lets the lab carry traffic
    /// before edged announces anything.
    pub fn kernel_routes(&self) {
        self.tor_routes();
        for v in &self.spec.vips {
            let (fam, plen, pick) = family(v.address);
            let prefix = format!("{}/{plen}", v.address);
            for (i, n) in self.nodes.iter().enumerate() {
                let hops = (0..n.proxies.len())
                    .map(|j| pick(&proxy_link(i, j, self.spec.proxies_per_node)).clone());
                multipath(&n.ns, fam, &prefix, hops);
                // Policy 1 reuses the skb's hash, which a veth carries over
                // from the ToR: every ToR choice would pin one proxy (hash
                // polarisation). Policy 3 hashes the 5-tuple afresh with
                // this node's own seed, as a separate box would.
                for key in [
                    "net.ipv4.fib_multipath_hash_policy=3",
                    "net.ipv6.fib_multipath_hash_policy=3",
                    "net.ipv4.fib_multipath_hash_fields=0x0037",
                    "net.ipv6.fib_multipath_hash_fields=0x0037",
                ] {
                    n.ns.exec_ok(&["sysctl", "-qw", key]);
                }
                let seed = format!("net.ipv4.fib_multipath_hash_seed={}", 7919 * (i + 1));
                n.ns.exec_ok(&["sysctl", "-qw", &seed]);
            }
        }
    }

    /// Static ECMP at the ToR over every node (instead of BGP).
    pub fn tor_routes(&self) {
        for v in &self.spec.vips {
            let (fam, plen, pick) = family(v.address);
            let hops = (0..self.nodes.len()).map(|i| pick(&tor_link(i)).clone());
            multipath(&self.tor_ns, fam, &format!("{}/{plen}", v.address), hops);
        }
    }

    /// A sample of node `i`'s Prometheus endpoint (default address, inside
    /// the node's namespace): the value of the line starting with `series`
    /// (name and labels as exposed), if any.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let text = traffic::in_netns(&self.nodes[i].ns.path(), || {
            let mut s = std::net::TcpStream::connect("127.0.0.1:9180").ok()?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })?;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Polls the ToR's kernel table until the route to `prefix` has `want`
    /// next hops (panics after `within`); returns how long that took.
    pub fn until_hops(&self, prefix: &str, want: usize, within: Duration) -> Duration {
        let t0 = std::time::Instant::now();
        let ok = poll_until(within, || net::nexthops(&self.tor_ns, prefix).len() == want);
        assert!(
            ok,
            "{prefix}: wanted {want} next hops, have {:?}",
            net::nexthops(&self.tor_ns, prefix)
        );
        t0.elapsed()
    }

    /// The client's source addresses of one family.
    pub fn sources(&self, v6: bool) -> Vec<std::net::IpAddr> {
        (0..self.spec.client_sources)
            .map(|s| {
                let (a, b) = client_source(s);
                if v6 { b } else { a }.parse().unwrap()
            })
            .collect()
    }
}

// === binaries and edgectl for tests ===

/// A binary of this workspace's build (`edged`, `edgectl`), found next to
/// the running test or bench binary's directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let b = dir.join(name);
    assert!(
        b.exists(),
        "{} missing: cargo build --workspace --bins first",
        b.display()
    );
    b
}

/// Runs `edgectl --socket SOCK ARGS`; panics with its stderr on failure.
pub fn edgectl(sock: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(workspace_bin("edgectl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("run edgectl");
    assert!(
        out.status.success(),
        "edgectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
