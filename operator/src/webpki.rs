//! What the TLS clients of `tlsrpt` share (load's PostgreSQL connection and the probes of
//! check-domain): the system's trusted roots, PEM bundles, and a verifier that checks the
//! handshake signature but leaves the certificate to the caller.
//!
//! rustls on ring: no system OpenSSL to build against or match.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Debian's bundle of the system's trusted CAs (ca-certificates: Mozilla's public roots
/// and what the administrator added).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The ring provider every client here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Adds the certificates of a PEM file to `roots`; returns how many were usable. A bundle
/// may hold certificates webpki cannot use: those are skipped, as OpenSSL does.
pub fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut n = 0;
    for c in certs {
        let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
        if roots.add(c).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Checks that the server holds the key of the certificate it shows (the handshake
/// signature), and accepts any certificate: the caller judges it, or chose not to.
#[derive(Debug)]
pub struct NoCheck(pub WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
