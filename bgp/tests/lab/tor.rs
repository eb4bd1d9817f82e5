//! ToR daemons: BIRD (import filter honouring 65535:0, `merge paths on`) or FRR.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Lab, run, wait_for};

pub const TOR_ASN: u32 = 65000;
pub const NODE_ASN: u32 = 65001;

/// Extra session options on the BIRD ToR.
#[derive(Default)]
pub struct TorOptions {
    /// TCP MD5 password on every session.
    pub password: Option<String>,
    /// Run BFD on every session.
    pub bfd: bool,
}

/// A BIRD ToR peering with nodes 1..=n over IPv4 and IPv6; returns its socket path.
pub fn start_bird_tor(lab: &mut Lab, n: u32) -> String {
    start_bird_tor_with(lab, n, &TorOptions::default())
}

/// [`start_bird_tor`] with session options.
pub fn start_bird_tor_with(lab: &mut Lab, n: u32, opts: &TorOptions) -> String {
    let dir = lab.subdir("tor-bird");
    let mut conf = String::from(
        "router id 198.51.100.1;\nprotocol device {}\n\
         protocol kernel { ipv4 { import none; export all; }; merge paths on; }\n\
         protocol kernel { ipv6 { import none; export all; }; merge paths on; }\n\
         # RFC 8326: a real fabric lowers GRACEFUL_SHUTDOWN routes to local pref 0.\n\
         filter from_node { if (65535,0) ~ bgp_community then bgp_local_pref = 0; accept; }\n",
    );
    let mut extra = String::new();
    if let Some(pw) = &opts.password {
        let _ = write!(extra, "password \"{pw}\";");
    }
    if opts.bfd {
        extra.push_str(" bfd on;");
        conf.push_str("protocol bfd {}\n");
    }
    for i in 1..=n {
        let (node4, tor4) = Lab::node_v4(i);
        let (node6, tor6) = Lab::node_v6(i);
        for (name, local, nb, fam) in [
            (format!("n{i}v4"), tor4, node4, "ipv4"),
            (format!("n{i}v6"), tor6, node6, "ipv6"),
        ] {
            let _ = writeln!(
                conf,
                "protocol bgp {name} {{ local {local} as {TOR_ASN}; neighbor {nb} as {NODE_ASN}; \
                 hold time 9; {extra} {fam} {{ import filter from_node; export none; }}; }}"
            );
        }
    }
    let cfg = dir.join("bird.conf");
    std::fs::write(&cfg, conf).unwrap();
    let sock = dir.join("bird.ctl").display().to_string();
    let (c, p) = (
        cfg.display().to_string(),
        dir.join("bird.pid").display().to_string(),
    );
    let tor = lab.tor.clone();
    lab.spawn_in(&tor, &["bird", "-f", "-c", &c, "-s", &sock, "-P", &p]);
    wait_for("ToR BIRD socket", Duration::from_secs(10), || {
        std::path::Path::new(&sock).exists()
    });
    sock
}

/// `birdc` output of a command on the ToR.
pub fn birdc(sock: &str, cmd: &str) -> String {
    let mut args = vec!["birdc", "-s", sock];
    args.extend(cmd.split(' '));
    run(&args)
}

/// An FRR ToR (zebra + bgpd with private paths, `maximum-paths`) for nodes 1..=n, IPv4.
/// Returns the vtysh directory for `vtysh --vty_socket`.
pub fn start_frr_tor(lab: &mut Lab, n: u32) -> String {
    let dir = lab.subdir("tor-frr");
    let d = dir.display().to_string();
    let mut conf = format!(
        "frr defaults datacenter\n!\nrouter bgp {TOR_ASN}\n bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n"
    );
    for i in 1..=n {
        let _ = writeln!(conf, " neighbor {} remote-as {NODE_ASN}", Lab::node_v4(i).0);
    }
    conf.push_str(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n");
    std::fs::write(dir.join("bgpd.conf"), conf).unwrap();
    std::fs::write(dir.join("zebra.conf"), "!\n").unwrap();
    // FRR drops privileges to user frr (its vty group is compiled in).
    super::run(&["chown", "-R", "frr:frr", &d]);
    let zserv = format!("{d}/zserv.api");
    let tor = lab.tor.clone();
    let common = |daemon: &str| -> Vec<String> {
        vec![
            format!("/usr/lib/frr/{daemon}"),
            "-f".into(),
            format!("{d}/{daemon}.conf"),
            "-i".into(),
            format!("{d}/{daemon}.pid"),
            "-z".into(),
            zserv.clone(),
            "--vty_socket".into(),
            d.clone(),
            "-u".into(),
            "frr".into(),
            "-g".into(),
            "frr".into(),
            "-P".into(),
            "0".into(),
        ]
    };
    let z = common("zebra");
    lab.spawn_in(&tor, &z.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("zebra zserv socket", Duration::from_secs(10), || {
        std::path::Path::new(&zserv).exists()
    });
    let b = common("bgpd");
    lab.spawn_in(&tor, &b.iter().map(String::as_str).collect::<Vec<_>>());
    d
}

/// `vtysh` output of a command on the FRR ToR.
pub fn vtysh(vty_dir: &str, cmd: &str) -> String {
    let out = std::process::Command::new("vtysh")
        .args(["--vty_socket", vty_dir, "-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
