//! HTTPS checks against a real TLS server with a certificate from a test CA:
//! verified with the CA file, refused without it, accepted with
//! `tls_verify: false`, refused for the wrong server name; HTTP/2 checks
//! over TLS need the server to agree to `h2` by ALPN.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edged_health::{CheckKey, CheckKind, probe};

/// One attempt of `kind` within `timeout`.
fn spec_of(kind: CheckKind, timeout: std::time::Duration) -> edged_health::CheckSpec {
    edged_health::CheckSpec::new(kind, timeout * 4, timeout)
}
use edged_health::HttpCheck;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["www.example.test".to_string()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert: leaf_cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// A GET / over TLS to `host` expecting 200 and "ok".
fn https(
    target: SocketAddr,
    host: &str,
    ca_file: Option<std::path::PathBuf>,
    tls_verify: bool,
    http2: bool,
) -> CheckKind {
    CheckKind::Http(HttpCheck {
        tls: true,
        host: Some(host.into()),
        body_contains: Some("ok".into()),
        ca_file,
        tls_verify,
        http2,
        ..HttpCheck::get(target)
    })
}

/// The server names (SNI) clients sent, in order.
type Names = Arc<std::sync::Mutex<Vec<Option<String>>>>;

fn server_config(p: &Pki) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.cert.clone()], p.key.clone_key())
        .unwrap()
}

async fn tls_server(p: &Pki, names: Names) -> SocketAddr {
    let cfg = server_config(p);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (acceptor, names) = (acceptor.clone(), names.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_string);
                names.lock().unwrap().push(sni);
                let mut buf = [0u8; 2048];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_verifies_against_the_configured_ca() {
    let p = pki();
    let dir = edged_testlab::TempDir::new("tls");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &p.ca_pem).unwrap();
    let names = Names::default();
    let addr = tls_server(&p, names.clone()).await;
    let key = CheckKey {
        vip: "web".into(),
        service: "tls".into(),
        proxy: "px1".into(),
    };
    let check = |host: &str, ca: Option<std::path::PathBuf>, verify: bool| {
        https(addr, host, ca, verify, false)
    };
    let t = Duration::from_secs(2);
    let o = probe(
        &key,
        &spec_of(check("www.example.test", Some(ca_file.clone()), true), t),
    )
    .await;
    assert!(o.ok(), "{o:?}");
    assert_eq!(
        names.lock().unwrap().as_slice(),
        [Some("www.example.test".to_string())],
        "the check's host is sent as SNI"
    );
    let o = probe(&key, &spec_of(check("www.example.test", None, true), t)).await;
    assert!(
        !o.ok() && o.reason().starts_with("tls:"),
        "unknown issuer must fail: {o:?}"
    );
    let o = probe(
        &key,
        &spec_of(check("other.example.test", Some(ca_file), true), t),
    )
    .await;
    assert!(
        !o.ok() && o.reason().starts_with("tls:"),
        "wrong name must fail: {o:?}"
    );
    let o = probe(&key, &spec_of(check("www.example.test", None, false), t)).await;
    assert!(o.ok(), "tls_verify false accepts: {o:?}");
}

/// An HTTP/2 server over TLS that offers `h2` by ALPN; answers 200 "ok".
async fn h2_tls_server(p: &Pki) -> SocketAddr {
    let mut cfg = server_config(p);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = conn.accept().await {
                    if let Ok(mut body) = respond.send_response(http::Response::new(()), false) {
                        let _ = body.send_data(bytes::Bytes::from_static(b"ok\n"), true);
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn http2_over_tls_needs_alpn_h2() {
    let p = pki();
    let dir = edged_testlab::TempDir::new("tls2");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &p.ca_pem).unwrap();
    let key = CheckKey {
        vip: "web".into(),
        service: "h2".into(),
        proxy: "px1".into(),
    };
    let check = |target| {
        https(
            target,
            "www.example.test",
            Some(ca_file.clone()),
            true,
            true,
        )
    };
    let t = Duration::from_secs(2);
    let h2 = h2_tls_server(&p).await;
    let o = probe(&key, &spec_of(check(h2), t)).await;
    assert!(o.ok(), "{o:?}");
    // A TLS server that speaks only HTTP/1.1 (no ALPN).
    let h1 = tls_server(&p, Names::default()).await;
    let o = probe(&key, &spec_of(check(h1), t)).await;
    assert_eq!(
        (o.ok(), o.reason().as_str()),
        (false, "tls: the server did not agree to HTTP/2 (ALPN h2)")
    );
}
