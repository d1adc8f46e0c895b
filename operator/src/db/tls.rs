//! TLS to a central PostgreSQL, with libpq's `sslmode` meanings (rustls on ring; no
//! system OpenSSL involved).
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | - |
//! | `allow`, `prefer` (default) | when the server offers it and the handshake succeeds | no |
//! | `require` | yes | no; as `verify-ca` when a root certificate file exists |
//! | `verify-ca` | yes | chain to `sslrootcert` |
//! | `verify-full` | yes | chain to `sslrootcert`, and the host name (or IP) |
//!
//! `sslrootcert` (or `$PGSSLROOTCERT`) is a PEM file, default `~/.postgresql/root.crt`
//! as libpq; `sslrootcert=system` is Debian's CA bundle and, as in libpq 16, means
//! `verify-full` (weaker modes are refused with it). `sslmode` may also come from
//! `$PGSSLMODE`. As libpq, TLS is never used over a Unix socket. Client certificates
//! (`sslcert`, `sslkey`) are not supported: use password or trust authentication.
//!
//! `require` without a root certificate encrypts but, as in libpq, does not prove who
//! answers; use `verify-full` across networks you do not trust.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::Socket;
use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::webpki::{NoCheck, SYSTEM_ROOTS, add_pem};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(v: &str) -> Result<Mode, String> {
        Ok(match v {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => {
                return Err(format!(
                    "sslmode={v:?}: one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// What the driver is told: whether to ask for TLS and whether to insist.
    pub fn driver(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS settings taken out of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub rootcert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` off a `postgresql://` URL or a libpq `key=value`
/// string (the driver knows neither `verify-*` nor `sslrootcert`); returns the rest
/// for the driver. Absent keys come from `$PGSSLMODE` and `$PGSSLROOTCERT`.
pub fn split(conninfo: &str) -> Result<(String, Settings), String> {
    let mut mode = None;
    let mut rootcert = None;
    let mut take = |k: &str, v: String| -> Result<bool, String> {
        match k {
            "sslmode" => mode = Some(Mode::parse(&v)?),
            "sslrootcert" => rootcert = Some(v),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if conninfo.contains("://") {
        match conninfo.split_once('?') {
            None => conninfo.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for kv in query.split('&') {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    if !take(k, percent_decode(v))? {
                        kept.push(kv);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = String::new();
        for (k, v, raw) in keyvalues(conninfo)? {
            if !take(k, v)? {
                if !kept.is_empty() {
                    kept.push(' ');
                }
                kept.push_str(raw);
            }
        }
        kept
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let rootcert = rootcert.or_else(|| env("PGSSLROOTCERT"));
    let system = rootcert.as_deref() == Some("system");
    let mode = match mode {
        Some(m) => m,
        None => match env("PGSSLMODE") {
            Some(v) => Mode::parse(&v)?,
            // libpq 16: the system's CAs mean verify-full unless told otherwise.
            None if system => Mode::VerifyFull,
            None => Mode::Prefer,
        },
    };
    // libpq refuses this too: any CA of the system would vouch for any name.
    if system && mode != Mode::VerifyFull && mode != Mode::Disable {
        return Err("sslrootcert=system needs sslmode=verify-full (the default with it)".into());
    }
    Ok((rest, Settings { mode, rootcert }))
}

/// `key=value` pairs of a libpq string, values unquoted: (key, value, the raw pair).
fn keyvalues(s: &str) -> Result<Vec<(&str, String, &str)>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() || b[i] != b'=' {
            return Err(format!("connection string: {key:?} without a value"));
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err("connection string: unterminated quote".into()),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        let value = String::from_utf8(value).map_err(|_| "connection string: not UTF-8")?;
        out.push((key, value, &s[start..i]));
    }
    Ok(out)
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for these settings (used only when the driver asks for TLS).
pub fn connector(s: &Settings) -> Result<MakeRustls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // libpq's default root file, and its rule that `require` verifies like `verify-ca`
    // when that file exists.
    let default_root = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".postgresql/root.crt"))
        .filter(|p| p.exists());
    let root: Option<PathBuf> = match s.rootcert.as_deref() {
        Some("system") => Some(PathBuf::from(SYSTEM_ROOTS)),
        Some(p) => Some(PathBuf::from(p)),
        None => default_root,
    };
    let verify = match (s.mode, &root) {
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => Verify::Nothing,
        (Mode::Require | Mode::VerifyCa, Some(_)) => Verify::Chain,
        (Mode::VerifyFull, Some(_)) => Verify::ChainAndName,
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(
                "sslmode=verify-ca/verify-full needs sslrootcert=FILE (PEM), sslrootcert=system, \
                 or ~/.postgresql/root.crt"
                    .into(),
            );
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (verify, root) {
        (Verify::Nothing, _) | (_, None) => {
            Arc::new(NoCheck(provider.signature_verification_algorithms))
        }
        (v, Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            add_pem(&mut roots, &path).map_err(|e| format!("sslrootcert {e}"))?;
            if roots.is_empty() {
                return Err(format!(
                    "sslrootcert {}: no usable certificate",
                    path.display()
                ));
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            if v == Verify::ChainAndName {
                inner
            } else {
                Arc::new(ChainOnly(inner))
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustls(Arc::new(config)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

/// `verify-ca`: the chain must lead to the root; the name is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres' TLS hook, over rustls.
#[derive(Clone)]
pub struct MakeRustls(Arc<rustls::ClientConfig>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // Called for Unix sockets too (with no name), where TLS is never started.
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned()).ok(),
        })
    }
}

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: Option<ServerName<'static>>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no host name for TLS")
            })?;
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, socket)
                .await?;
            Ok(RustlsStream(Box::new(s)))
        })
    }
}

pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    /// No SCRAM channel binding (the server then uses plain SCRAM-SHA-256).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_keyvalue_forms_lose_only_the_tls_keys() {
        let (rest, s) =
            split("postgresql://u@db.example:5432/tlsrpt?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5")
                .unwrap();
        assert_eq!(
            rest,
            "postgresql://u@db.example:5432/tlsrpt?connect_timeout=5"
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.rootcert.as_deref(), Some("/etc/ca.pem"));
        let (rest, s) =
            split("host=db.example sslmode = 'require' password='a b\\'c' dbname=x").unwrap();
        assert_eq!(rest, "host=db.example password='a b\\'c' dbname=x");
        assert_eq!(s.mode, Mode::Require);
        let (rest, _) = split("postgresql://u@h/db?sslmode=disable").unwrap();
        assert_eq!(rest, "postgresql://u@h/db");
        assert!(split("host=x sslmode=verify").is_err());
        let (_, s) = split("host=x sslrootcert=system").unwrap();
        assert_eq!(s.mode, Mode::VerifyFull);
        assert!(split("host=x sslrootcert=system sslmode=require").is_err());
        assert!(split("host='x").is_err());
    }

    #[test]
    fn verify_modes_need_a_root() {
        let s = Settings {
            mode: Mode::VerifyFull,
            rootcert: Some("/nonexistent/ca.pem".into()),
        };
        assert!(connector(&s).is_err());
        let s = Settings {
            mode: Mode::Require,
            rootcert: None,
        };
        assert!(connector(&s).is_ok());
    }
}
