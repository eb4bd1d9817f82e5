//! A BIRD 2 top-of-rack in a network namespace, configured as a real fabric
//! would be: eBGP to each edge node, import only, GRACEFUL_SHUTDOWN (65535:0)
//! honoured with local preference 0 (RFC 8326), and ECMP into the kernel
//! (`merge paths on`) so the kernel table shows every next hop.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{NetNs, Proc, TempDir, poll_until};

/// One BGP neighbour of the ToR.
pub struct Neighbor {
    /// Protocol name in BIRD (`[a-z0-9_]`).
    pub name: String,
    /// The edge node's address on the link.
    pub address: IpAddr,
    /// The edge node's ASN.
    pub asn: u32,
}

/// A running BIRD ToR.
pub struct BirdTor {
    dir: TempDir,
    _proc: Proc,
}

impl BirdTor {
    /// Writes the config and starts `bird -f` in `ns`; waits for its socket.
    pub fn start(ns: &NetNs, router_id: &str, asn: u32, neighbors: &[Neighbor]) -> BirdTor {
        let dir = TempDir::new("tor");
        let mut conf = format!(
            "router id {router_id};\nlog \"{log}\" all;\n\
             protocol device {{ scan time 10; }}\n\
             protocol kernel kernel4 {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
             protocol kernel kernel6 {{ ipv6 {{ import none; export all; }}; merge paths on; }}\n\
             # RFC 8326: a route marked GRACEFUL_SHUTDOWN loses to every other.\n\
             filter from_edge {{\n  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n  accept;\n}}\n",
            log = dir.path().join("bird.log").display()
        );
        for n in neighbors {
            let channel = if n.address.is_ipv4() { "ipv4" } else { "ipv6" };
            conf += &format!(
                "protocol bgp {name} {{\n  local as {asn};\n  neighbor {addr} as {peer};\n  hold time 9;\n  keepalive time 3;\n  connect retry time 1;\n  error wait time 1, 2;\n  {channel} {{ import filter from_edge; export none; }};\n}}\n",
                name = n.name,
                addr = n.address,
                peer = n.asn,
            );
        }
        std::fs::write(dir.path().join("bird.conf"), conf).unwrap();
        let mut cmd = ns.command("bird");
        cmd.arg("-f")
            .arg("-c")
            .arg(dir.path().join("bird.conf"))
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let tor = BirdTor {
            _proc: Proc::spawn(cmd),
            dir,
        };
        let sock = tor.socket();
        assert!(
            poll_until(Duration::from_secs(10), || sock.exists()),
            "ToR BIRD did not start:\n{}",
            tor.log()
        );
        tor
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bird.ctl")
    }

    /// Runs `birdc` with `args`; returns its output.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the session to neighbour `name` is Established.
    pub fn established(&self, name: &str) -> bool {
        self.birdc(&["show", "protocols", name])
            .contains("Established")
    }

    /// BIRD's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }
}
