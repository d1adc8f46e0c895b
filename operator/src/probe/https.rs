//! One HTTPS GET the way an MTA-STS sender fetches a policy (RFC 8461 §3.3): to an address
//! already resolved and vetted, SNI and Host the policy host, HTTP/1.1, `Connection:
//! close`, no redirect followed (a 3xx is returned as it is), nothing cached.
//!
//! Written here rather than taken from an HTTP client crate because the request must go
//! to the address this module's caller resolved through the resolver under test and
//! checked against the address policy, over the same TLS inspection as the SMTP probes
//! (the certificate is described, not only refused); it is one request, one response.
//!
//! Limits: response head 16 KiB; body `MAX_BODY` (64 KiB, what strict senders accept for
//! a policy) — a larger body is cut and flagged; Content-Length, chunked, or until the
//! server closes; everything within the operation deadline.

use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::tls::{self, Session};
use super::{Limits, shown};

pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEAD: usize = 16 * 1024;

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower case, values as sent (made safe).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than `MAX_BODY`.
    pub truncated: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why there is no response.
#[derive(Debug, Clone)]
pub enum Error {
    Connect(String),
    Tls(tls::Error),
    /// The TLS session was set up (its certificate is known), then HTTP failed.
    Http(Session, String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(m) => write!(f, "no connection to port 443: {m}"),
            Error::Tls(e) => write!(f, "{e}"),
            Error::Http(_, m) => write!(f, "{m}"),
        }
    }
}

/// GET `https://HOST/PATH` from `addr`.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    limits: &Limits,
) -> Result<(Session, Response), Error> {
    let mut sock = TcpStream::connect_timeout(&addr, limits.op())
        .map_err(|e| Error::Connect(e.to_string()))?;
    let until = Instant::now() + limits.op();
    let (session, mut conn) =
        tls::handshake(&mut sock, tls::config(true), host, until).map_err(Error::Tls)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tlsrpt-check-domain\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    let until = Instant::now() + limits.op();
    tls::write_all(&mut sock, &mut conn, req.as_bytes(), until)
        .map_err(|e| Error::Http(session.clone(), e.to_string()))?;
    let (raw, _) =
        tls::read_to_end(&mut sock, &mut conn, MAX_HEAD + MAX_BODY + 64 * 1024, until)
            .map_err(|e| Error::Http(session.clone(), format!("reading the response: {e}")))?;
    tls::close(&mut sock, &mut conn);
    let resp = parse(&raw).map_err(|e| Error::Http(session.clone(), e))?;
    Ok((session, resp))
}

/// Parses a whole HTTP/1.x response (pure).
pub fn parse(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            raw.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((head_end, body_start)) = end else {
        return Err(if raw.len() > MAX_HEAD {
            format!("no end of the response head within {MAX_HEAD} bytes")
        } else if raw.is_empty() {
            "the server closed the connection without a response".into()
        } else {
            format!(
                "an incomplete response: {:?}",
                shown(&String::from_utf8_lossy(&raw[..raw.len().min(80)]), 80)
            )
        });
    };
    if head_end > MAX_HEAD {
        return Err(format!("a response head longer than {MAX_HEAD} bytes"));
    }
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!(
            "not an HTTP response: {:?}",
            shown(status_line, 80)
        ));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("not an HTTP status: {:?}", shown(status_line, 80)))?;
    let mut headers = Vec::new();
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), shown(v.trim(), 300)));
        }
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        truncated: false,
    };
    let rest = &raw[body_start..];
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = resp.header("content-length") {
        let n: usize = len
            .parse()
            .map_err(|_| format!("Content-Length {len:?} is not a number"))?;
        if rest.len() < n.min(MAX_BODY + 1) {
            return Err(format!("the body ends after {} of {n} bytes", rest.len()));
        }
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    resp.truncated = body.len() > MAX_BODY;
    resp.body = body;
    resp.body.truncate(MAX_BODY);
    Ok(resp)
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers ignored.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("a chunked body cut short")?;
        let size_line = String::from_utf8_lossy(&b[..nl]);
        let size_hex = size_line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("a bad chunk size {:?}", shown(size_hex, 20)))?;
        b = &b[nl + 1..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size || out.len() > MAX_BODY {
            // Cut: keep what came, bounded.
            out.extend_from_slice(&b[..size.min(b.len())]);
            if out.len() > MAX_BODY {
                return Ok(out);
            }
            return Err("a chunked body cut short".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size..];
        b = b
            .strip_prefix(b"\r\n")
            .or_else(|| b.strip_prefix(b"\n"))
            .ok_or("a chunk without its CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r =
            parse(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
                .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("content-type")),
            (200, &b"hello"[..], Some("text/plain"))
        );
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"hello world");
        let r = parse(b"HTTP/1.1 301 Moved\r\nLocation: https://www.example.com/\r\n\r\n").unwrap();
        assert_eq!(
            (r.status, r.header("location")),
            (301, Some("https://www.example.com/"))
        );
        let r = parse(b"HTTP/1.0 200 OK\n\nno length, until close").unwrap();
        assert_eq!(r.body, b"no length, until close");
        let big = [
            b"HTTP/1.1 200 OK\r\n\r\n".as_slice(),
            &vec![b'a'; MAX_BODY + 10],
        ]
        .concat();
        let r = parse(&big).unwrap();
        assert!(r.truncated && r.body.len() == MAX_BODY);
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
