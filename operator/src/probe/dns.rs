//! DNS as a DANE sender sees it: every answer with its response code and whether the
//! validating resolver in use vouched for it (the AD bit, RFC 4035 §3.2.3).
//!
//! Postfix and Exim do not validate DNSSEC themselves: they trust the AD bit of a local
//! validating resolver. So does this client, and only that: the AD bit counts when every
//! server asked is on a loopback address, or `/etc/resolv.conf` says `options trust-ad`
//! (glibc's rule), or the operator says so (`--trust-ad`, for a validating resolver
//! reached over a network they trust). Otherwise an answer is never "validated" — an
//! attacker on the path could set the bit — and [`Resolver::ad_trusted`] says why. Queries carry AD=1 and the EDNS DO bit (RFC
//! 6840 §5.7: a validating resolver then reports AD), over UDP and, when the answer is
//! truncated, TCP, with std sockets and a deadline per query: no runtime, no cache.
//! A SERVFAIL is asked again with CD=1 (checking disabled): an answer then means the data
//! exists but does not validate — DNSSEC-bogus, what senders report as `dnssec-invalid`.
//!
//! Limits: answers over UDP up to 4096 bytes, over TCP up to 65535 (the protocol's own);
//! the response must carry our ID and question, from the server asked; anything else
//! arriving on the socket is ignored until the deadline. Record data is untrusted.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// Largest UDP answer we accept (and advertise with EDNS).
const UDP_PAYLOAD: u16 = 4096;

/// How one name and type resolved.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Records of the asked type (CNAMEs on the way are in `chain`).
    Found {
        records: Vec<RData>,
        ttl: u32,
        secure: bool,
        chain: Vec<String>,
    },
    /// The name does not exist.
    NxDomain { secure: bool },
    /// The name exists, without records of this type.
    NoData { secure: bool },
    /// The resolver refused the answer as DNSSEC-bogus (SERVFAIL, but data with CD=1).
    Bogus(String),
    /// No answer to rely on: timeout, SERVFAIL, REFUSED, garbage.
    Failed(String),
}

/// The resolver to ask: the one given, or those of /etc/resolv.conf.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    /// The AD bit of these servers' answers is believed (see the module docs).
    trust_ad: bool,
    timeout: Duration,
    /// When set, no attempt outlives it (the whole check of a domain is bounded).
    deadline: Option<Instant>,
}

impl Resolver {
    /// `nameserver`: ask only this server; otherwise the system's (at most three, in
    /// order). `timeout`: per query attempt.
    pub fn new(
        nameserver: Option<SocketAddr>,
        timeout: Duration,
        trust_ad: bool,
    ) -> Result<Resolver, String> {
        let mut conf_trusts = false;
        let servers = match nameserver {
            Some(a) => vec![a],
            None => {
                conf_trusts = std::fs::read_to_string("/etc/resolv.conf").is_ok_and(|t| {
                    t.lines().any(|l| {
                        let mut w = l.split_whitespace();
                        w.next() == Some("options") && w.any(|o| o == "trust-ad")
                    })
                });
                let (conf, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| format!("system resolver configuration: {e}"))?;
                let mut v: Vec<SocketAddr> = Vec::new();
                for ns in conf.name_servers() {
                    let port = ns.connections.first().map(|c| c.port).unwrap_or(53);
                    let a = SocketAddr::new(ns.ip, port);
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                v.truncate(3);
                if v.is_empty() {
                    return Err("no name server in /etc/resolv.conf".into());
                }
                v
            }
        };
        let loopback = servers.iter().all(|a| a.ip().is_loopback());
        Ok(Resolver {
            trust_ad: trust_ad || conf_trusts || loopback,
            servers,
            timeout,
            deadline: None,
        })
    }

    /// Whether the AD bit of the answers is believed, and if not, why not.
    pub fn ad_trusted(&self) -> Result<(), String> {
        if self.trust_ad {
            Ok(())
        } else {
            Err(format!(
                "the resolver ({}) is not on this host and /etc/resolv.conf has no \"options trust-ad\": its AD bit is not believed (as Postfix and Exim do not), so nothing counts as DNSSEC-validated here; use a local validating resolver, --nameserver 127.0.0.1, or --trust-ad",
                self.servers
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// This resolver, with every query ending by `deadline` at the latest.
    pub fn until(&self, deadline: Instant) -> Resolver {
        Resolver {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The time one attempt may take: the timeout, cut to what is left before the deadline.
    fn attempt(&self) -> Option<Duration> {
        let t = match self.deadline {
            Some(d) => self
                .timeout
                .min(d.saturating_duration_since(Instant::now())),
            None => self.timeout,
        };
        (!t.is_zero()).then_some(t)
    }

    /// Looks `name` up as `rtype`.
    pub fn lookup(&self, name: &str, rtype: RecordType) -> Lookup {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let Ok(qname) = Name::from_ascii(&fqdn) else {
            return Lookup::Failed(format!("{name:?} is not a domain name"));
        };
        let mut last = String::from("no name server");
        for server in &self.servers {
            let resp = match self.ask(*server, &qname, rtype, false) {
                Ok(m) => m,
                Err(e) => {
                    last = format!("{server}: {e}");
                    continue;
                }
            };
            return match resp.metadata.response_code {
                ResponseCode::NoError => {
                    let secure = resp.metadata.authentic_data && self.trust_ad;
                    let mut records = Vec::new();
                    let mut chain = Vec::new();
                    let mut ttl = u32::MAX;
                    for r in &resp.answers {
                        match &r.data {
                            RData::CNAME(c) if rtype != RecordType::CNAME => {
                                chain.push(c.0.to_ascii().trim_end_matches('.').to_owned())
                            }
                            d if d.record_type() == rtype => {
                                ttl = ttl.min(r.ttl);
                                records.push(d.clone());
                            }
                            _ => {}
                        }
                    }
                    if records.is_empty() {
                        Lookup::NoData { secure }
                    } else {
                        Lookup::Found {
                            records,
                            ttl,
                            secure,
                            chain,
                        }
                    }
                }
                ResponseCode::NXDomain => Lookup::NxDomain {
                    secure: resp.metadata.authentic_data && self.trust_ad,
                },
                ResponseCode::ServFail => {
                    // Validation failure, or a broken zone? Ask again without validation.
                    match self.ask(*server, &qname, rtype, true) {
                        Ok(m)
                            if matches!(
                                m.metadata.response_code,
                                ResponseCode::NoError | ResponseCode::NXDomain
                            ) =>
                        {
                            Lookup::Bogus(format!(
                                "{server} answers SERVFAIL, and with checking disabled it answers: the signatures do not validate"
                            ))
                        }
                        _ => {
                            last = format!("{server}: SERVFAIL");
                            continue;
                        }
                    }
                }
                rc => {
                    last = format!("{server}: {rc}");
                    continue;
                }
            };
        }
        Lookup::Failed(last)
    }

    /// The addresses of `host` (A then AAAA), each with whether it validated.
    pub fn addresses(&self, host: &str) -> (Vec<(IpAddr, bool)>, Vec<String>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for rt in [RecordType::A, RecordType::AAAA] {
            match self.lookup(host, rt) {
                Lookup::Found {
                    records, secure, ..
                } => {
                    for r in records {
                        match r {
                            RData::A(a) => out.push((IpAddr::V4(a.0), secure)),
                            RData::AAAA(a) => out.push((IpAddr::V6(a.0), secure)),
                            _ => {}
                        }
                    }
                }
                Lookup::NxDomain { .. } | Lookup::NoData { .. } => {}
                Lookup::Bogus(why) => problems.push(format!("{host} {rt}: DNSSEC-bogus ({why})")),
                Lookup::Failed(why) => problems.push(format!("{host} {rt}: {why}")),
            }
        }
        (out, problems)
    }

    fn ask(
        &self,
        server: SocketAddr,
        qname: &Name,
        rtype: RecordType,
        checking_disabled: bool,
    ) -> Result<Message, String> {
        let mut id = [0u8; 2];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut id)
            .map_err(|_| "no random source".to_owned())?;
        let id = u16::from_be_bytes(id);
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.authentic_data = true;
        q.metadata.checking_disabled = checking_disabled;
        q.add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD).set_dnssec_ok(true);
        q.set_edns(edns);
        let wire = q.to_vec().map_err(|e| format!("encoding the query: {e}"))?;
        let mut last = String::from("the check ran out of time before this lookup");
        for _attempt in 0..2 {
            if self.attempt().is_none() {
                break;
            }
            match self.udp(server, &wire, id, qname, rtype) {
                Ok(m) if m.metadata.truncation => {
                    return self.tcp(server, &wire, id, qname, rtype);
                }
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn udp(
        &self,
        server: SocketAddr,
        wire: &[u8],
        id: u16,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<Message, String> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(bind).map_err(|e| format!("udp socket: {e}"))?;
        sock.connect(server).map_err(|e| format!("udp: {e}"))?;
        sock.send(wire).map_err(|e| format!("udp send: {e}"))?;
        let timeout = self.attempt().ok_or("the check ran out of time")?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; UDP_PAYLOAD as usize];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {} s", timeout.as_secs_f32()));
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| format!("udp: {e}"))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(format!("udp: {e}")),
            };
            if let Some(m) = ours(&buf[..n], id, qname, rtype) {
                return Ok(m);
            }
        }
    }

    fn tcp(
        &self,
        server: SocketAddr,
        wire: &[u8],
        id: u16,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<Message, String> {
        let timeout = self.attempt().ok_or("the check ran out of time")?;
        let deadline = Instant::now() + timeout;
        let mut s = TcpStream::connect_timeout(&server, timeout)
            .map_err(|e| format!("tcp connect: {e}"))?;
        s.set_write_timeout(Some(timeout)).ok();
        let mut framed = Vec::with_capacity(wire.len() + 2);
        framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        framed.extend_from_slice(wire);
        s.write_all(&framed).map_err(|e| format!("tcp send: {e}"))?;
        let mut read_exact = |buf: &mut [u8]| -> Result<(), String> {
            let mut got = 0;
            while got < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!("no answer within {} s", timeout.as_secs_f32()));
                }
                s.set_read_timeout(Some(left)).ok();
                match s.read(&mut buf[got..]) {
                    Ok(0) => return Err("tcp: connection closed".into()),
                    Ok(n) => got += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(format!("tcp: {e}")),
                }
            }
            Ok(())
        };
        let mut len = [0u8; 2];
        read_exact(&mut len)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        read_exact(&mut buf)?;
        ours(&buf, id, qname, rtype).ok_or_else(|| "tcp: not an answer to our query".into())
    }
}

/// The message in `buf` if it is the response to our query.
fn ours(buf: &[u8], id: u16, qname: &Name, rtype: RecordType) -> Option<Message> {
    let m = Message::from_vec(buf).ok()?;
    let q = m.queries.first()?;
    (m.metadata.id == id
        && m.metadata.message_type == MessageType::Response
        && q.query_type == rtype
        && q.name.to_ascii().eq_ignore_ascii_case(&qname.to_ascii()))
    .then_some(m)
}
