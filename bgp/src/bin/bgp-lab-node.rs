//! Test and bench helper: start a managed Speaker, announce VIPs, print `ready`,
//! then supervise forever. Used by the namespace labs (kill -9 test, benches).
//!
//! Usage: bgp-lab-node STATE_DIR ROUTER_ID LOCAL_ASN PEER_ADDR PEER_ASN VIP_ADDR...

use std::io::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use edged_bgp::{BgpSpec, BirdMode, DrainPolicy, PeerSpec, RouteState, Speaker, VipRoute};

fn usage() -> ! {
    eprintln!("usage: bgp-lab-node STATE_DIR ROUTER_ID LOCAL_ASN PEER_ADDR PEER_ASN VIP_ADDR...");
    std::process::exit(64);
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        usage();
    }
    let vips: Vec<VipRoute> = args[5..]
        .iter()
        .enumerate()
        .map(|(i, a)| VipRoute {
            name: format!("v{i}"),
            prefix: a.parse::<IpAddr>().unwrap_or_else(|_| usage()),
            communities: vec![],
            large_communities: vec![],
        })
        .collect();
    let spec = BgpSpec {
        router_id: arg(&args, 1),
        local_asn: arg(&args, 2),
        peers: vec![PeerSpec {
            name: "tor".into(),
            address: arg(&args, 3),
            asn: arg(&args, 4),
            source_address: None,
            hold_time: 9,
            keepalive: None,
            bfd: false,
            password_file: None,
            multihop: None,
            ttl_security: false,
        }],
        vips: vips.clone(),
        drain: DrainPolicy::default(),
        mode: BirdMode::Managed {
            bird_binary: "/usr/sbin/bird".into(),
            state_dir: args[0].clone().into(),
            keeper: edged_bgp::KeeperCommand::from_build_dir(),
            handover_grace: std::time::Duration::from_secs(5),
        },
    };
    let mut sp = Speaker::start(spec).await.unwrap_or_else(|e| {
        eprintln!("bgp-lab-node: {e}");
        std::process::exit(1);
    });
    for v in &vips {
        if let Err(e) = sp.set_route(&v.name, RouteState::Announced).await {
            eprintln!("bgp-lab-node: {e}");
            std::process::exit(1);
        }
    }
    println!(
        "ready pid={} bird_pid={}",
        std::process::id(),
        sp.bird_pid().unwrap_or(0)
    );
    let _ = std::io::stdout().flush();
    loop {
        if let Err(e) = sp.supervise().await {
            eprintln!("bgp-lab-node: supervise: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
