//! The SMTP dialogue of a sending MTA, up to the TLS handshake (RFC 5321, RFC 3207):
//! connect to port 25, read the greeting, EHLO, look for STARTTLS, send it, expect 220.
//!
//! Limits: a reply line may be 2,048 bytes (RFC 5321 §4.5.3.1.5 says 512; real servers
//! send longer), a reply 100 lines and 64 KiB; every read has the operation deadline, so a
//! server that trickles a byte a second is cut off like one that stalls. Bytes a server
//! sends after its 220 to STARTTLS (before the handshake) are an error: accepting them
//! would let an attacker inject commands into the TLS session (CVE-2011-0411 turned
//! around).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use super::{Limits, shown};

const MAX_LINE: usize = 2048;
const MAX_LINES: usize = 100;
const MAX_REPLY: usize = 64 * 1024;

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply as one safe line for messages.
    pub fn shown(&self) -> String {
        shown(&format!("{} {}", self.code, self.lines.join(" / ")), 200)
    }
}

/// Why the dialogue ended before TLS.
#[derive(Debug, Clone)]
pub enum Error {
    /// No TCP connection.
    Connect(String),
    /// No route from this host to that address (typically IPv6 on an IPv4-only host):
    /// says nothing about the MX.
    NoRoute(String),
    /// The server stopped answering.
    Timeout(&'static str),
    /// It closed or reset the connection.
    Closed(&'static str),
    /// It answered with something that is not SMTP.
    Protocol(String),
    /// A well-formed SMTP refusal (a 4xx or 5xx greeting, EHLO refused, STARTTLS refused).
    Refused(&'static str, Reply),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(m) => write!(f, "no connection to port 25: {m}"),
            Error::NoRoute(m) => write!(f, "no route from this host to it: {m}"),
            Error::Timeout(w) => write!(f, "no answer {w} in time"),
            Error::Closed(w) => write!(f, "the server closed the connection {w}"),
            Error::Protocol(m) => write!(f, "the server does not speak SMTP: {m}"),
            Error::Refused(w, r) => write!(f, "{w} refused: {}", r.shown()),
        }
    }
}

/// A connection in SMTP state: reads replies line by line, bounded.
pub struct Conn {
    pub sock: TcpStream,
    buf: Vec<u8>,
    deadline_op: std::time::Duration,
    deadline: Instant,
}

/// What the server said before STARTTLS.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub banner: Reply,
    pub starttls: bool,
}

/// Connects to `addr` and runs greeting and EHLO.
pub fn open(addr: SocketAddr, limits: &Limits) -> Result<(Conn, Greeting), Error> {
    let sock = TcpStream::connect_timeout(&addr, limits.op()).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => Error::Connect("timed out".into()),
        std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable => {
            Error::NoRoute(e.to_string())
        }
        _ => Error::Connect(e.to_string()),
    })?;
    sock.set_nodelay(true).ok();
    let mut c = Conn {
        sock,
        buf: Vec::new(),
        deadline_op: limits.op_timeout,
        deadline: limits.deadline,
    };
    let banner = c.reply("to the connection (the greeting)")?;
    if banner.code != 220 {
        return Err(Error::Refused("the connection was", banner));
    }
    c.send(&format!("EHLO {}\r\n", limits.ehlo))?;
    let ehlo = c.reply("to EHLO")?;
    if ehlo.code != 250 {
        return Err(Error::Refused("EHLO was", ehlo));
    }
    let starttls = ehlo.lines.iter().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    });
    Ok((c, Greeting { banner, starttls }))
}

impl Conn {
    /// Sends STARTTLS and expects 220 with nothing after it; the socket is then ready
    /// for the TLS handshake.
    pub fn starttls(mut self) -> Result<TcpStream, Error> {
        self.send("STARTTLS\r\n")?;
        let r = self.reply("to STARTTLS")?;
        if r.code != 220 {
            return Err(Error::Refused("STARTTLS was", r));
        }
        if !self.buf.is_empty() {
            return Err(Error::Protocol(format!(
                "{} bytes sent after the 220 to STARTTLS, before TLS began (command injection?)",
                self.buf.len()
            )));
        }
        Ok(self.sock)
    }

    /// Ends the session politely (best effort).
    pub fn quit(mut self) {
        if self.send("QUIT\r\n").is_ok() {
            let _ = self.reply("to QUIT");
        }
    }

    fn left(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(self.deadline_op)
    }

    fn send(&mut self, s: &str) -> Result<(), Error> {
        self.sock
            .set_write_timeout(Some(self.left().max(std::time::Duration::from_millis(1))))
            .ok();
        self.sock
            .write_all(s.as_bytes())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    Error::Timeout("to our command")
                }
                _ => Error::Closed("before our command"),
            })
    }

    /// Reads one (multi-line) reply within one operation's time.
    fn reply(&mut self, what: &'static str) -> Result<Reply, Error> {
        let until = Instant::now() + self.left();
        let mut lines = Vec::new();
        let mut total = 0usize;
        let mut code = None;
        loop {
            let line = self.line(until, what)?;
            total += line.len();
            if total > MAX_REPLY || lines.len() >= MAX_LINES {
                return Err(Error::Protocol(format!(
                    "a reply longer than {MAX_LINES} lines or {MAX_REPLY} bytes"
                )));
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let b = line.as_slice();
            let ok = b.len() >= 3
                && b[..3].iter().all(u8::is_ascii_digit)
                && (b.len() == 3 || b[3] == b' ' || b[3] == b'-');
            if !ok {
                return Err(Error::Protocol(format!("{what}: {:?}", shown(&text, 80))));
            }
            let c: u16 = text[..3].parse().expect("three digits");
            if code.is_some_and(|k| k != c) {
                return Err(Error::Protocol(format!(
                    "{what}: reply codes change within one reply ({:?})",
                    shown(&text, 80)
                )));
            }
            code = Some(c);
            lines.push(text.get(4..).unwrap_or("").to_owned());
            if b.len() == 3 || b[3] == b' ' {
                return Ok(Reply { code: c, lines });
            }
        }
    }

    /// One line without its CRLF (a bare LF is tolerated).
    fn line(&mut self, until: Instant, what: &'static str) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut l: Vec<u8> = self.buf.drain(..=i).collect();
                l.pop();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(l);
            }
            if self.buf.len() > MAX_LINE {
                return Err(Error::Protocol(format!(
                    "{what}: a line longer than {MAX_LINE} bytes"
                )));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(what));
            }
            self.sock.set_read_timeout(Some(left)).ok();
            let mut chunk = [0u8; 4096];
            match self.sock.read(&mut chunk) {
                Ok(0) => return Err(Error::Closed(closed_when(what))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Timeout(what));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Error::Closed(closed_when(what))),
            }
        }
    }
}

fn closed_when(what: &'static str) -> &'static str {
    match what {
        "to the connection (the greeting)" => "before its greeting",
        "to EHLO" => "after EHLO",
        "to STARTTLS" => "after STARTTLS",
        _ => "mid-dialogue",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::Duration;

    /// A one-connection server on 127.0.0.1 that sends `script` (after reading a line for
    /// each `None`), then holds the connection for `hold`.
    fn server(script: Vec<Option<Vec<u8>>>, hold: Duration) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for step in script {
                match step {
                    Some(b) => {
                        let _ = s.write_all(&b);
                    }
                    None => {
                        let mut one = [0u8; 1];
                        while s.read(&mut one).is_ok_and(|n| n == 1) && one[0] != b'\n' {}
                    }
                }
            }
            std::thread::sleep(hold);
        });
        a
    }

    fn limits(op: Duration) -> Limits {
        Limits {
            op_timeout: op,
            deadline: Instant::now() + Duration::from_secs(30),
            allow_private: true,
            roots: Arc::new(rustls::RootCertStore::empty()),
            ehlo: "probe.example".into(),
            nat64: Default::default(),
            resolver: crate::probe::dns::Resolver::new(
                Some("127.0.0.1:9".parse().unwrap()),
                op,
                false,
            )
            .unwrap(),
        }
    }

    #[test]
    fn greeting_ehlo_and_starttls() {
        let a = server(
            vec![
                Some(b"220-mx.example ESMTP\r\n220 second line\r\n".to_vec()),
                None,
                Some(
                    b"250-mx.example\r\n250-PIPELINING\r\n250-starttls\r\n250 8BITMIME\r\n"
                        .to_vec(),
                ),
                None,
                Some(b"220 go ahead\r\n".to_vec()),
            ],
            Duration::from_millis(200),
        );
        let (c, g) = open(a, &limits(Duration::from_secs(5))).unwrap();
        assert_eq!(g.banner.code, 220);
        assert_eq!(g.banner.lines, ["mx.example ESMTP", "second line"]);
        assert!(g.starttls, "STARTTLS is a keyword, case-insensitive");
        assert!(c.starttls().is_ok());
    }

    #[test]
    fn no_starttls_and_refusals() {
        let a = server(
            vec![
                Some(b"220 mx\r\n".to_vec()),
                None,
                Some(b"250-mx\r\n250 SIZE 1000\r\n".to_vec()),
            ],
            Duration::from_millis(200),
        );
        let (_, g) = open(a, &limits(Duration::from_secs(5))).unwrap();
        assert!(!g.starttls);
        let a = server(
            vec![Some(b"554 go away\r\n".to_vec())],
            Duration::from_millis(200),
        );
        assert!(
            matches!(open(a, &limits(Duration::from_secs(5))), Err(Error::Refused(_, r)) if r.code == 554)
        );
        let a = server(
            vec![
                Some(b"220 mx\r\n".to_vec()),
                None,
                Some(b"250-mx\r\n250 STARTTLS\r\n".to_vec()),
                None,
                Some(b"454 TLS not available\r\n".to_vec()),
            ],
            Duration::from_millis(200),
        );
        let (c, _) = open(a, &limits(Duration::from_secs(5))).unwrap();
        assert!(matches!(c.starttls(), Err(Error::Refused(_, r)) if r.code == 454));
    }

    #[test]
    fn hostile_servers_end_in_errors() {
        // Short for the cases that must time out; generous for the others, so that a
        // busy machine cannot turn their error into a timeout.
        let op = Duration::from_millis(300);
        let slow = Duration::from_secs(10);
        // Stalls.
        let a = server(vec![], Duration::from_secs(3));
        assert!(matches!(open(a, &limits(op)), Err(Error::Timeout(_))));
        // Trickles a greeting without end.
        let a = server(vec![Some(b"220 slow".to_vec())], Duration::from_secs(3));
        assert!(matches!(open(a, &limits(op)), Err(Error::Timeout(_))));
        // Garbage.
        let a = server(
            vec![Some(b"\x16\x03\x01 hello\r\n".to_vec())],
            Duration::from_millis(200),
        );
        assert!(matches!(open(a, &limits(slow)), Err(Error::Protocol(_))));
        // A huge line.
        let a = server(vec![Some(vec![b'2'; 100_000])], Duration::from_millis(500));
        assert!(
            matches!(open(a, &limits(slow)), Err(Error::Protocol(m)) if m.contains("longer than 2048"))
        );
        // Too many lines.
        let a = server(
            vec![Some(b"220-x\r\n".repeat(200))],
            Duration::from_millis(500),
        );
        assert!(matches!(open(a, &limits(slow)), Err(Error::Protocol(_))));
        // Changing codes within a reply.
        let a = server(
            vec![Some(b"220-x\r\n250 y\r\n".to_vec())],
            Duration::from_millis(200),
        );
        assert!(matches!(open(a, &limits(slow)), Err(Error::Protocol(_))));
        // Hangs up.
        let a = server(vec![], Duration::ZERO);
        assert!(matches!(open(a, &limits(slow)), Err(Error::Closed(_))));
        // Bytes after the 220 to STARTTLS (injection).
        let a = server(
            vec![
                Some(b"220 mx\r\n".to_vec()),
                None,
                Some(b"250 STARTTLS\r\n".to_vec()),
                None,
                Some(b"220 go\r\n250 injected\r\n".to_vec()),
            ],
            Duration::from_millis(200),
        );
        let (c, _) = open(a, &limits(Duration::from_secs(5))).unwrap();
        assert!(matches!(c.starttls(), Err(Error::Protocol(m)) if m.contains("injection")));
    }
}
