//! One TLS handshake on a connected socket (after STARTTLS, or at once for HTTPS), with or
//! without SNI, keeping what the server showed: version, cipher suite, certificate chain.
//!
//! The certificate is accepted whatever it is (the handshake signature is still checked:
//! the server holds the key of what it shows): judging it is `cert`'s job, so that an
//! expired or untrusted certificate is described, not just refused. TLS 1.2 and 1.3 only
//! (rustls): a server that offers nothing newer fails here, and says so — MTA-STS senders
//! require TLS 1.2 (RFC 8461 §4.4).
//!
//! Limits: the handshake as a whole has the operation deadline; rustls caps each
//! handshake message (64 KiB) and so the chain a server can send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{AlertDescription, ClientConfig, ClientConnection, PeerIncompatible};

use crate::webpki::{NoCheck, provider};

/// What the handshake established.
#[derive(Debug, Clone)]
pub struct Session {
    /// `TLSv1.2`, `TLSv1.3`.
    pub version: String,
    /// The IANA-style name rustls gives, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// Leaf first, as sent.
    pub chain: Vec<CertificateDer<'static>>,
}

/// Why there is no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The server offers no TLS 1.2 or later.
    VersionTooOld(String),
    /// No answer in time.
    Timeout,
    /// Anything else: no shared cipher, an alert, garbage instead of TLS, a reset.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::VersionTooOld(m) => write!(f, "no TLS 1.2 or later: {m}"),
            Error::Timeout => write!(f, "the TLS handshake timed out"),
            Error::Failed(m) => write!(f, "the TLS handshake failed: {m}"),
        }
    }
}

/// The client configuration: TLS 1.2 and 1.3, any certificate, SNI on or off.
pub fn config(sni: bool) -> Arc<ClientConfig> {
    let p = provider();
    let algs = p.signature_verification_algorithms;
    let mut c = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoCheck(algs)))
        .with_no_client_auth();
    c.enable_sni = sni;
    Arc::new(c)
}

/// Runs the handshake on `sock` for `host` (sent as SNI when `config` says so), until
/// `deadline`. Returns the session and the connection (for a clean close, or HTTP).
pub fn handshake(
    sock: &mut TcpStream,
    config: Arc<ClientConfig>,
    host: &str,
    deadline: Instant,
) -> Result<(Session, ClientConnection), Error> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Failed(format!("{host:?} is not a host name")))?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| Error::Failed(e.to_string()))?;
    // Driven by hand, not by rustls' complete_io: that one loops for as long as bytes keep
    // coming, so a server sending one byte before each read timeout would hold it for
    // days. Here every read is one round, and the deadline is checked before each.
    while conn.is_handshaking() || conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        if conn.wants_write() {
            sock.set_write_timeout(Some(left)).ok();
            conn.write_tls(sock).map_err(|e| classify(&e))?;
            continue;
        }
        sock.set_read_timeout(Some(left)).ok();
        match conn.read_tls(sock) {
            Ok(0) => {
                return Err(Error::Failed(
                    "the server closed the connection during the handshake".into(),
                ));
            }
            Ok(_) => {
                if let Err(e) = conn.process_new_packets() {
                    // Tell the server why (the alert), best effort.
                    let _ = conn.write_tls(sock);
                    return Err(classify_tls(&e));
                }
            }
            Err(e) => return Err(classify(&e)),
        }
    }
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| s.suite().as_str().unwrap_or("unknown").to_owned())
        .unwrap_or_default();
    let chain = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    Ok((
        Session {
            version,
            cipher,
            chain,
        },
        conn,
    ))
}

/// Sends close_notify, best effort (the peer may already be gone).
pub fn close(sock: &mut TcpStream, conn: &mut ClientConnection) {
    conn.send_close_notify();
    let _ = conn.write_tls(sock);
    let _ = sock.flush();
}

/// Reads the plaintext a server sends over TLS until `max` bytes, EOF or `deadline`.
pub fn read_to_end(
    sock: &mut TcpStream,
    conn: &mut ClientConnection,
    max: usize,
    deadline: Instant,
) -> Result<(Vec<u8>, bool), Error> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return Ok((out, false)),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > max {
                    out.truncate(max);
                    return Ok((out, true));
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // EOF without close_notify: what many HTTP servers do; the body is what came.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((out, false)),
            Err(e) => return Err(Error::Failed(e.to_string())),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        sock.set_read_timeout(Some(left)).ok();
        match conn.read_tls(sock) {
            Ok(0) => return Ok((out, false)),
            Ok(_) => {
                conn.process_new_packets()
                    .map_err(|e| Error::Failed(e.to_string()))?;
            }
            Err(e) => return Err(classify(&e)),
        }
    }
}

/// Writes all of `data` as plaintext over TLS.
pub fn write_all(
    sock: &mut TcpStream,
    conn: &mut ClientConnection,
    data: &[u8],
    deadline: Instant,
) -> Result<(), Error> {
    conn.writer()
        .write_all(data)
        .map_err(|e| Error::Failed(e.to_string()))?;
    while conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        sock.set_write_timeout(Some(left)).ok();
        conn.write_tls(sock).map_err(|e| classify(&e))?;
    }
    Ok(())
}

fn classify(e: &std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), WouldBlock | TimedOut) {
        return Error::Timeout;
    }
    if let Some(r) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
        return classify_tls(r);
    }
    match e.kind() {
        UnexpectedEof => {
            Error::Failed("the server closed the connection during the handshake".into())
        }
        ConnectionReset => {
            Error::Failed("the server reset the connection during the handshake".into())
        }
        _ => Error::Failed(e.to_string()),
    }
}

fn classify_tls(r: &rustls::Error) -> Error {
    match r {
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion) => Error::VersionTooOld(
            "the server answered our TLS 1.2/1.3 offer with a protocol_version alert".into(),
        ),
        rustls::Error::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        ) => Error::VersionTooOld("the server chose a version older than TLS 1.2".into()),
        rustls::Error::InvalidMessage(m) => {
            Error::Failed(format!("the server does not speak TLS ({m:?})"))
        }
        other => Error::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A server that answers the ClientHello one byte every 100 ms: each read returns
    /// before its timeout, so only a deadline checked between reads ends the handshake.
    /// (It gives up after 20 s: a regression then fails here instead of hanging.)
    #[test]
    fn a_trickling_server_cannot_outlast_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut hello = [0u8; 512];
            let _ = s.read(&mut hello);
            // A TLS record header for a handshake message, then its body byte by byte.
            let _ = s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
            for _ in 0..200 {
                std::thread::sleep(Duration::from_millis(100));
                if s.write_all(&[0x02]).is_err() {
                    return;
                }
            }
        });
        let mut sock = TcpStream::connect(addr).unwrap();
        let r = handshake(
            &mut sock,
            config(true),
            "mx.example",
            Instant::now() + Duration::from_secs(1),
        );
        // Without the deadline between reads this ends only when the server gives up,
        // with the connection closed: an error, but not a timeout.
        assert!(matches!(r, Err(Error::Timeout)), "{:?}", r.err());
    }
}
