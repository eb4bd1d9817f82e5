//! Pure-logic unit tests: spec validation, status parsers, export diff; and the
//! client's timeout/greeting handling against a fake socket (the real path is
//! covered by the namespace labs).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use edged_bgp::reply::{Assembler, Reply, Step};
use edged_bgp::status::{ExportSets, diff_exports, parse_protocols, parse_route_prefixes};
use edged_bgp::{
    BgpSpec, BirdClient, BirdMode, ClientError, DrainPolicy, MismatchKind, PeerSpec, SpecError,
    VipRoute,
};

fn reply(bytes: &[u8]) -> Reply {
    let mut a = Assembler::new();
    for l in bytes.split_inclusive(|b| *b == b'\n') {
        if let Step::Done(r) = a.push(l).unwrap() {
            return r;
        }
    }
    panic!("incomplete reply");
}

fn reply_of(lines: &[&str]) -> Reply {
    let mut bytes = lines.join("\n").into_bytes();
    bytes.push(b'\n');
    reply(&bytes)
}

fn spec() -> BgpSpec {
    BgpSpec {
        router_id: "192.0.2.1".parse().unwrap(),
        local_asn: 65001,
        peers: vec![PeerSpec {
            name: "tor".into(),
            address: "192.0.2.2".parse().unwrap(),
            asn: 65000,
            source_address: None,
            hold_time: 9,
            keepalive: None,
            bfd: false,
            password_file: None,
            multihop: None,
            ttl_security: false,
        }],
        vips: vec![VipRoute {
            name: "web".into(),
            prefix: "203.0.113.1".parse().unwrap(),
            communities: vec![],
            large_communities: vec![],
        }],
        drain: DrainPolicy::default(),
        mode: BirdMode::External {
            socket: "/x".into(),
            include_file: "/y".into(),
        },
    }
}

#[test]
fn spec_validation_rejects_unsafe_input() {
    assert_eq!(spec().validate(), Ok(()));
    let mut s = spec();
    s.vips[0].name = "Web\"; }".into();
    assert!(matches!(
        s.validate(),
        Err(SpecError::BadName { what: "VIP", .. })
    ));
    let mut s = spec();
    s.peers[0].name = "x".repeat(41);
    assert!(matches!(
        s.validate(),
        Err(SpecError::BadName { what: "peer", .. })
    ));
    let mut s = spec();
    s.vips.push(s.vips[0].clone());
    assert!(matches!(s.validate(), Err(SpecError::DuplicateName { .. })));
    let mut s = spec();
    let mut v = s.vips[0].clone();
    v.name = "other".into();
    s.vips.push(v);
    assert!(matches!(
        s.validate(),
        Err(SpecError::DuplicatePrefix { .. })
    ));
    let mut s = spec();
    s.peers[0].source_address = Some("2001:db8::1".parse().unwrap());
    assert!(matches!(
        s.validate(),
        Err(SpecError::FamilyMismatch { .. })
    ));
    let mut s = spec();
    s.peers[0].multihop = Some(2);
    s.peers[0].ttl_security = true;
    assert!(matches!(
        s.validate(),
        Err(SpecError::MultihopAndTtl { .. })
    ));
    let mut s = spec();
    s.vips[0].prefix = "127.0.0.1".parse().unwrap();
    assert!(matches!(s.validate(), Err(SpecError::BadPrefix { .. })));
    let mut s = spec();
    s.local_asn = 0;
    assert_eq!(s.validate(), Err(SpecError::ZeroAsn));
}

#[test]
fn protocols_parser_reads_state_since_exports_and_error() {
    let r = reply_of(&[
        "2002-Name       Proto      Table      State  Since         Info",
        "1002-edged_p_tor4 BGP        ---        up     1700000000    Established   ",
        "1006-  BGP state:          Established",
        "     Neighbor address: 198.51.100.1",
        "   Channel ipv4",
        "     Routes:         0 imported, 3 exported, 0 preferred",
        "1002-edged_p_tor6 BGP        ---        start  1700000100    Active        Socket: Connection refused",
        "1006-  BGP state:          Active",
        "     Last error:       Socket: Connection refused",
        "1002-device1    Device     ---        up     1700000000",
        "0000 ",
    ]);
    let p = parse_protocols(&r, "edged_p_");
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        (p[0].name.as_str(), p[0].exported, p[0].is_up()),
        ("tor4", 3, true)
    );
    assert_eq!(p[0].uptime(1_700_000_010), Some(Duration::from_secs(10)));
    assert_eq!(
        (p[1].state.as_str(), p[1].bgp_state.as_str()),
        ("start", "Active")
    );
    assert_eq!(
        p[1].last_error.as_deref(),
        Some("Socket: Connection refused")
    );
    assert!(!p[1].is_up());
}

#[test]
fn route_parser_and_diff() {
    // BIRD replaces a repeated code by a single space; a second route of the
    // same net is indented further.
    let r = reply_of(&[
        "1007-Table edged4:",
        " 203.0.113.10/32      blackhole [edged_a_web 1700000000] * (200)",
        " 203.0.113.11/32      blackhole [edged_d_api 1700000000] * (200)",
        "                      blackhole [edged_a_api 1700000000] (200)",
        "0000 ",
    ]);
    let got = parse_route_prefixes(&r);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        got,
        BTreeSet::from([ip("203.0.113.10"), ip("203.0.113.11")])
    );
    let expected = ExportSets {
        all: BTreeSet::from([ip("203.0.113.1"), ip("203.0.113.2"), ip("203.0.113.3")]),
        graceful: BTreeSet::from([ip("203.0.113.2")]),
    };
    let actual = ExportSets {
        all: BTreeSet::from([ip("203.0.113.2"), ip("203.0.113.3"), ip("203.0.113.9")]),
        graceful: BTreeSet::from([ip("203.0.113.3")]),
    };
    let kinds: Vec<(IpAddr, MismatchKind)> = diff_exports("t", &expected, &actual)
        .iter()
        .map(|m| (m.prefix, m.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ip("203.0.113.1"), MismatchKind::Missing),
            (ip("203.0.113.2"), MismatchKind::MissingGracefulShutdown),
            (ip("203.0.113.3"), MismatchKind::UnexpectedGracefulShutdown),
            (ip("203.0.113.9"), MismatchKind::Unexpected),
        ]
    );
    assert!(diff_exports("t", &expected, &expected).is_empty());
}

async fn fake_server(greeting: &'static [u8]) -> (std::path::PathBuf, tokio::task::JoinHandle<()>) {
    let path = std::env::temp_dir().join(format!(
        "edged-bgp-fake-{}-{}.ctl",
        std::process::id(),
        greeting.len()
    ));
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let h = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(greeting).await.unwrap();
        // Never answer anything else; keep the socket open.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    (path, h)
}

#[tokio::test]
async fn client_times_out_and_rejects_bad_greeting() {
    let (p, h) = fake_server(b"").await;
    let e = BirdClient::connect(&p, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    h.abort();
    let (p2, h2) = fake_server(b"0013 not a greeting\n").await;
    let e = BirdClient::connect(&p2, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::BadGreeting { code: 13, .. }),
        "{e}"
    );
    h2.abort();
    let (p3, h3) = fake_server(b"0001 BIRD fake ready.\n").await;
    let mut c = BirdClient::connect(&p3, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(matches!(
        c.command("bad\ncmd").await,
        Err(ClientError::BadCommand { .. })
    ));
    let e = c.command("show status").await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    h3.abort();
    let e = BirdClient::connect(
        std::path::Path::new("/nonexistent/x.ctl"),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ClientError::Connect { .. }) && e.to_string().contains("is BIRD running"),
        "{e}"
    );
    for p in [p, p2, p3] {
        let _ = std::fs::remove_file(p);
    }
}

#[tokio::test]
async fn unreadable_or_unsafe_password_is_rejected_before_bird_starts() {
    let dir = std::env::temp_dir().join(format!("edged-bgp-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = spec();
    s.mode = BirdMode::Managed {
        bird_binary: "/usr/sbin/bird".into(),
        state_dir: dir.join("state"),
        keeper: edged_bgp::KeeperCommand::from_build_dir(),
        handover_grace: std::time::Duration::from_secs(5),
    };
    s.peers[0].password_file = Some(dir.join("missing"));
    let e = edged_bgp::Speaker::start(s.clone())
        .await
        .err()
        .expect("missing file");
    assert!(
        matches!(e, edged_bgp::BgpError::PasswordFile { ref peer, .. } if peer == "tor"),
        "{e}"
    );
    std::fs::write(dir.join("pw"), "bad\"pw\n").unwrap();
    s.peers[0].password_file = Some(dir.join("pw"));
    let e = edged_bgp::Speaker::start(s).await.err().expect("quote");
    assert!(matches!(e, edged_bgp::BgpError::BadPassword { .. }), "{e}");
    assert!(!dir.join("state/bird.ctl").exists(), "nothing was started");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn client_reconnects_after_a_lost_reply() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let path = std::env::temp_dir().join(format!("edged-bgp-resync-{}.ctl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        // 1st connection: answers late (after the client gave up).
        let (s, _) = l.accept().await.unwrap();
        let mut s = BufReader::new(s);
        s.get_mut().write_all(b"0001 fake ready.\n").await.unwrap();
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = s.get_mut().write_all(b"0013 late reply\n").await;
        // 2nd connection: answers at once.
        let (s2, _) = l.accept().await.unwrap();
        let mut s2 = BufReader::new(s2);
        s2.get_mut().write_all(b"0001 fake ready.\n").await.unwrap();
        line.clear();
        s2.read_line(&mut line).await.unwrap();
        s2.get_mut().write_all(b"0000 fresh\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let mut c = BirdClient::connect(&path, Duration::from_millis(150))
        .await
        .unwrap();
    let e = c.command("show status").await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    tokio::time::sleep(Duration::from_millis(250)).await; // let the late reply arrive
    let r = c.command("show status").await.expect("reconnected");
    assert_eq!(
        r.message(),
        "fresh",
        "the late reply must not be taken for the new one"
    );
    server.abort();
    let _ = std::fs::remove_file(&path);
}
