//! HTTP and HTTPS: one request on a fresh connection (hyper), with the
//! VIP's Host header and TLS server name so it exercises the proxy's route
//! to the application.

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};

use super::tcp::connect;
use crate::spec::CheckKind;

/// Bodies longer than this fail the check rather than fill memory.
const MAX_BODY: usize = 64 * 1024;

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 2048;

/// A kept-alive connection of one check, reused by its next attempt: a
/// fresh TCP (and TLS) handshake per attempt costs several times the
/// request itself. Its driver task ends when it is dropped.
pub struct HttpConn {
    sender: SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub async fn check(
    kind: &CheckKind,
    source: Option<IpAddr>,
    conn: &mut Option<HttpConn>,
) -> Result<(), String> {
    let CheckKind::Http {
        target,
        method,
        path,
        host,
        expect_status,
        body_contains,
        ..
    } = kind
    else {
        unreachable!("http::check takes an Http check")
    };
    let host_header = host.clone().unwrap_or_else(|| match target {
        std::net::SocketAddr::V4(a) => a.ip().to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    let request = || {
        hyper::Request::builder()
            .method(method.as_str())
            .uri(path.as_str())
            .header(hyper::header::HOST, host_header.as_str())
            .header(hyper::header::USER_AGENT, "edged-health")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))
    };
    let req = request()?;
    // Reuse the previous attempt's connection while it is open; if the
    // server closed it meanwhile (idle timeout, request limit), one retry
    // on a new connection, so a stale connection is not a failure.
    let reused = conn.take().filter(|c| !c.sender.is_closed());
    let (status, body, c) = match reused {
        Some(c) => match exchange(c, req).await {
            Ok(r) => r,
            Err(_) => exchange(open(kind, source).await?, request()?).await?,
        },
        None => exchange(open(kind, source).await?, req).await?,
    };
    *conn = Some(c);
    if !expect_status.contains(&status) {
        return Err(format!("status {status}"));
    }
    if let Some(needle) = body_contains
        && !String::from_utf8_lossy(&body).contains(needle.as_str())
    {
        return Err("body mismatch".into());
    }
    Ok(())
}

/// A new connection (TCP, then TLS if configured) and its HTTP/1.1 driver.
async fn open(kind: &CheckKind, source: Option<IpAddr>) -> Result<HttpConn, String> {
    let CheckKind::Http {
        target,
        tls,
        host,
        ca_file,
        tls_verify,
        ..
    } = kind
    else {
        unreachable!("http::open takes an Http check")
    };
    let stream = connect(*target, source).await?;
    if *tls {
        let name = match host {
            Some(h) => ServerName::try_from(h.clone())
                .map_err(|e| format!("tls: bad server name {h}: {e}"))?,
            None => ServerName::IpAddress(target.ip().into()),
        };
        let config = tls_config(ca_file.as_deref(), *tls_verify)?;
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        handshake(tls_stream).await
    } else {
        handshake(stream).await
    }
}

async fn handshake<S>(stream: S) -> Result<HttpConn, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Small reads: thousands of kept connections each hold their buffer.
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_CHUNK))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_reason(&e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(HttpConn { sender, driver })
}

/// One request and its whole body (bounded) on `c`; gives `c` back.
async fn exchange(
    mut c: HttpConn,
    req: hyper::Request<Empty<Bytes>>,
) -> Result<(u16, Bytes, HttpConn), String> {
    c.sender.ready().await.map_err(|e| hyper_reason(&e))?;
    let resp = c
        .sender
        .send_request(req)
        .await
        .map_err(|e| hyper_reason(&e))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(h) => hyper_reason(&h),
            Err(e) => format!("body: {e}"),
        })?
        .to_bytes();
    Ok((status, body, c))
}

fn hyper_reason(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        return "closed mid-response".into();
    }
    if e.is_parse() || e.is_parse_status() {
        return "invalid response".into();
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return super::io_reason(io);
        }
        src = s.source();
    }
    e.to_string()
}

fn tls_config(
    ca_file: Option<&std::path::Path>,
    verify: bool,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls: ca_file {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `tls_verify: false`: the operator chose to accept any certificate.
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
