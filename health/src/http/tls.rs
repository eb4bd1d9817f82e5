//! TLS for HTTP checks: one connect for HTTP/1.1 and HTTP/2 (rustls with
//! the ring provider), naming the VIP's host (else the proxy's address),
//! trusting the check's CA bundle or the webpki roots.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::outcome::Failure;
use crate::spec::HttpCheck;

/// TLS over `stream` for check `h`, offering `alpn` (HTTP/2: `h2`) when
/// given; with ALPN the server must agree to it.
pub(crate) async fn connect(
    stream: TcpStream,
    h: &HttpCheck,
    alpn: Option<&[u8]>,
) -> Result<TlsStream<TcpStream>, Failure> {
    let name = match &h.host {
        Some(n) => ServerName::try_from(n.clone())
            .map_err(|e| Failure::Tls(format!("bad server name {n}: {e}")))?,
        None => ServerName::IpAddress(h.target.ip().into()),
    };
    let mut cfg = config(h.ca_file.as_deref(), h.tls_verify)?;
    if let Some(p) = alpn {
        cfg.alpn_protocols = vec![p.to_vec()];
    }
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, stream)
        .await
        .map_err(|e| Failure::Tls(e.to_string()))?;
    if let Some(p) = alpn
        && tls.get_ref().1.alpn_protocol() != Some(p)
    {
        return Err(Failure::Tls(format!(
            "the server did not agree to HTTP/2 (ALPN {})",
            String::from_utf8_lossy(p)
        )));
    }
    Ok(tls)
}

/// The client config of a check: its CA bundle (else the webpki roots),
/// or any certificate when the operator turned verification off.
fn config(
    ca_file: Option<&std::path::Path>,
    verify: bool,
) -> Result<rustls::ClientConfig, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Tls(e.to_string()))?;
    if !verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Failure::Tls(format!("ca_file {}: {e}", path.display()))
            };
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
            for c in certs {
                let c = c.map_err(|e| bad(&e))?;
                roots.add(c).map_err(|e| bad(&e))?;
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
