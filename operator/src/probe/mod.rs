//! Live probes of a domain's inbound mail TLS, as a sending MTA sees it: DNS with the
//! validating resolver's verdict (`dns`), the MTA-STS record and policy (`mta_sts`, over
//! `https`), each MX's SMTP dialogue (`smtp`) and TLS handshake (`tls`), the certificates
//! shown (`cert`), and DANE's TLSA records matched against them (`dane`).
//!
//! Safety, because the hosts probed are named by DNS answers (and, for `summary --probe`,
//! by reports, which anyone can forge):
//! - only the domain's own hosts are ever contacted: its current MX set (port 25) and
//!   `mta-sts.DOMAIN` (port 443) — never a host only because a report names it;
//! - loopback, private, shared, link-local, unique-local, multicast and reserved
//!   addresses are refused unless the operator allows them (`Limits::allow_private`);
//! - every connect, read and whole check has a deadline, every line, header, body and
//!   certificate chain a size cap; redirects are never followed; whatever a server sends
//!   (garbage, a 10 MB banner, a stall, a reset) ends as an observation, never a hang or
//!   a panic.

pub mod cert;
pub mod dane;
pub mod dns;
pub mod https;
pub mod mta_sts;
pub mod smtp;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::RootCertStore;

/// What every probe is bounded by, and what it trusts.
#[derive(Clone)]
pub struct Limits {
    /// Each connect, read or write.
    pub op_timeout: Duration,
    /// The whole check of one domain.
    pub deadline: Instant,
    /// Probe loopback and private addresses too (test set-ups, internal relays).
    pub allow_private: bool,
    /// The public roots (the system bundle) and `--ca-file`.
    pub roots: Arc<RootCertStore>,
    /// The name we give in EHLO.
    pub ehlo: String,
    /// The network's own NAT64 prefixes, discovered once per run when an IPv6 address
    /// is about to be probed ([`Limits::refused`]).
    pub nat64: Arc<std::sync::OnceLock<Vec<Nat64>>>,
    /// The resolver that discovers them.
    pub resolver: dns::Resolver,
}

impl Limits {
    /// Why `ip` is not probed (None: it may be): the address classes of [`refused`],
    /// and for an IPv6 address the IPv4 address a NAT64 prefix of this network puts in
    /// it (RFC 7050 discovery through `ipv4only.arpa`, once per run).
    pub fn refused(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_private {
            return None;
        }
        if let Some(c) = refused(ip) {
            return Some(c);
        }
        if ip.is_ipv6() {
            let prefixes = self.nat64.get_or_init(|| {
                let answers: Vec<Ipv6Addr> = match self.resolver.lookup(
                    "ipv4only.arpa",
                    hickory_resolver::proto::rr::RecordType::AAAA,
                ) {
                    dns::Lookup::Found { records, .. } => records
                        .iter()
                        .filter_map(|r| match r {
                            hickory_resolver::proto::rr::RData::AAAA(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                nat64_from_discovery(&answers)
            });
            return refused_with(ip, prefixes);
        }
        None
    }

    /// The time left for one operation: the smaller of the per-operation timeout and what
    /// remains of the whole check (never zero, so that a socket call fails by timeout).
    pub fn op(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(self.op_timeout)
            .max(Duration::from_millis(1))
    }

    /// Has the whole check run out of time?
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A NAT64 prefix (RFC 6052): IPv6 addresses in it carry an IPv4 address, judged by
/// that one. The well-known 64:ff9b::/96 is always known; a network's own is discovered
/// (RFC 7050: the AAAA records of `ipv4only.arpa`, [`nat64_from_discovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat64 {
    pub prefix: Ipv6Addr,
    /// 32, 40, 48, 56, 64 or 96.
    pub len: u8,
}

impl Nat64 {
    /// The IPv4 address inside `a`, when `a` is in this prefix (RFC 6052 §2.2: the
    /// octets after the prefix, skipping bits 64 to 71).
    pub fn embedded(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        let (b, p) = (a.octets(), self.prefix.octets());
        let n = usize::from(self.len / 8);
        if b[..n] != p[..n] {
            return None;
        }
        let v4: Vec<u8> = (n..16).filter(|&i| i != 8).take(4).map(|i| b[i]).collect();
        (v4.len() == 4).then(|| Ipv4Addr::new(v4[0], v4[1], v4[2], v4[3]))
    }
}

/// The NAT64 prefixes that synthesised these AAAA answers for `ipv4only.arpa` (RFC 7050
/// §3: they hold 192.0.0.170 or 192.0.0.171 at a prefix length of RFC 6052).
pub fn nat64_from_discovery(answers: &[Ipv6Addr]) -> Vec<Nat64> {
    let mut out = Vec::new();
    for a in answers {
        for len in [96u8, 64, 56, 48, 40, 32] {
            let mut p = a.octets();
            for x in p.iter_mut().skip(usize::from(len / 8)) {
                *x = 0;
            }
            let n = Nat64 {
                prefix: Ipv6Addr::from(p),
                len,
            };
            if matches!(n.embedded(*a), Some(v) if v == Ipv4Addr::new(192, 0, 0, 170) || v == Ipv4Addr::new(192, 0, 0, 171))
                && !out.contains(&n)
            {
                out.push(n);
                break;
            }
        }
    }
    out
}

/// Why an address is not probed, or None when it is a public unicast address.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    refused_with(ip, &[])
}

/// [`refused`], with the network's own NAT64 prefixes besides the well-known one.
pub fn refused_with(ip: IpAddr, nat64: &[Nat64]) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => refused_v4(a),
        IpAddr::V6(a) => {
            // An AAAA record holding an IPv4-mapped address (::ffff:a.b.c.d) is no
            // address to connect to over IPv6.
            if a.to_ipv4_mapped().is_some() {
                return Some("IPv4-mapped (::ffff:0:0/96)");
            }
            for n in nat64 {
                if let Some(v4) = n.embedded(a) {
                    return refused_v4(v4).or(None);
                }
            }
            let s = a.segments();
            // IPv4 addresses inside IPv6 ones: NAT64 (64:ff9b::/96), 6to4 (2002::/16), the
            // deprecated IPv4-compatible form (::a.b.c.d): judged by the IPv4 address.
            let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            let inner = if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                Some(embedded(s[6], s[7]))
            } else if s[0] == 0x2002 {
                Some(embedded(s[1], s[2]))
            } else if s[..6] == [0, 0, 0, 0, 0, 0] && (s[6] != 0 || s[7] > 1) {
                Some(embedded(s[6], s[7]))
            } else {
                None
            };
            if let Some(c) = inner.and_then(refused_v4) {
                return Some(c);
            }
            if a.is_loopback() {
                Some("loopback")
            } else if s[..3] == [0x64, 0xff9b, 1] {
                Some("local-use NAT64 (64:ff9b:1::/48)")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("site-local (fec0::/10)")
            } else if s[0] == 0x2001 && s[1] & 0xfff0 == 0x0010 {
                Some("ORCHID (2001:10::/28)")
            } else if s[0] == 0x2001 && s[1] == 0 {
                Some("Teredo (2001::/32)")
            } else if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
                Some("benchmarking (2001:2::/48)")
            } else if a.is_unspecified() {
                Some("unspecified")
            } else if a.is_multicast() {
                Some("multicast")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (fc00::/7)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation (2001:db8::/32)")
            } else if a == Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0, 0])
                || s[0] == 0x0100 && s[1..4] == [0, 0, 0]
            {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

fn refused_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_private() {
        Some("private (RFC 1918)")
    } else if a.is_link_local() {
        Some("link-local (169.254.0.0/16)")
    } else if o[0] == 100 && o[1] & 0xc0 == 64 {
        Some("shared address space (100.64.0.0/10)")
    } else if a.is_unspecified() || o[0] == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a.is_broadcast() || o[0] >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else if a.is_documentation() {
        Some("documentation (TEST-NET)")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking (198.18.0.0/15)")
    } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
        Some("6to4 relay anycast (192.88.99.0/24)")
    } else {
        None
    }
}

/// Text from a server made safe to show: control characters replaced, at most `max`
/// characters (an ellipsis says when cut).
pub fn shown(s: &str, max: usize) -> String {
    let mut t: String = s
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .take(max + 1)
        .collect();
    if t.chars().count() > max {
        t = t.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for (a, refused_as) in [
            ("127.0.0.11", Some("loopback")),
            ("10.1.2.3", Some("private (RFC 1918)")),
            ("172.16.0.1", Some("private (RFC 1918)")),
            ("192.168.1.1", Some("private (RFC 1918)")),
            ("169.254.1.1", Some("link-local (169.254.0.0/16)")),
            ("100.64.0.1", Some("shared address space (100.64.0.0/10)")),
            ("0.1.2.3", Some("unspecified (0.0.0.0/8)")),
            ("224.0.0.1", Some("multicast")),
            ("255.255.255.255", Some("reserved (240.0.0.0/4)")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("IPv4-mapped (::ffff:0:0/96)")),
            ("::ffff:10.0.0.1", Some("IPv4-mapped (::ffff:0:0/96)")),
            ("::ffff:8.8.8.8", Some("IPv4-mapped (::ffff:0:0/96)")),
            (
                "64:ff9b:1::10.0.0.1",
                Some("local-use NAT64 (64:ff9b:1::/48)"),
            ),
            (
                "64:ff9b:1::8.8.8.8",
                Some("local-use NAT64 (64:ff9b:1::/48)"),
            ),
            ("fec0::1", Some("site-local (fec0::/10)")),
            ("2001:10::1", Some("ORCHID (2001:10::/28)")),
            ("2001:1f::1", Some("ORCHID (2001:10::/28)")),
            ("2001:0:4136:e378::1", Some("Teredo (2001::/32)")),
            ("2001:2::1", Some("benchmarking (2001:2::/48)")),
            ("192.88.99.1", Some("6to4 relay anycast (192.88.99.0/24)")),
            ("fd00::1", Some("unique-local (fc00::/7)")),
            ("fe80::1", Some("link-local (fe80::/10)")),
            ("ff02::1", Some("multicast")),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2a00:1450:4001:80b::201a", None),
            ("64:ff9b::10.0.0.1", Some("private (RFC 1918)")),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::1", Some("loopback")),
            ("::10.1.2.3", Some("private (RFC 1918)")),
            (
                "192.0.0.8",
                Some("IETF protocol assignments (192.0.0.0/24)"),
            ),
            ("198.19.1.1", Some("benchmarking (198.18.0.0/15)")),
        ] {
            assert_eq!(refused(a.parse().unwrap()), refused_as, "{a}");
        }
    }

    #[test]
    fn nat64_prefixes_are_discovered_and_judged_by_their_ipv4() {
        // RFC 7050: ipv4only.arpa's AAAA under a /96 and a /64 network-specific prefix.
        let p96: Ipv6Addr = "2001:db8:64::c000:aa".parse().unwrap();
        let p64: Ipv6Addr = "2001:db8:1:2:c0:0:aa00:0".parse().unwrap();
        let found = nat64_from_discovery(&[p96, p64]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].len, found[1].len), (96, 64));
        let inside: Ipv6Addr = "2001:db8:64::a00:1".parse().unwrap(); // 10.0.0.1
        assert_eq!(
            refused_with(inside.into(), &found),
            Some("private (RFC 1918)")
        );
        let public: Ipv6Addr = "2001:db8:64::808:808".parse().unwrap(); // 8.8.8.8
        assert_eq!(refused_with(public.into(), &found), None);
        // /64: bits 64-71 (the u octet) are skipped.
        let inside64: Ipv6Addr = "2001:db8:1:2:7f:0:100:0".parse().unwrap(); // 127.0.0.1
        assert_eq!(
            found[1].embedded(inside64),
            Some(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(refused_with(inside64.into(), &found), Some("loopback"));
        // Without the discovery, the documentation prefix is refused as such.
        assert_eq!(
            refused(inside.into()),
            Some("documentation (2001:db8::/32)")
        );
        assert!(nat64_from_discovery(&["2a00::1".parse().unwrap()]).is_empty());
    }

    #[test]
    fn shown_is_one_safe_bounded_line() {
        assert_eq!(shown("220 mx\r\nEVIL", 100), "220 mx\u{FFFD}\u{FFFD}EVIL");
        assert_eq!(shown(&"x".repeat(500), 10).chars().count(), 10);
        assert!(shown(&"x".repeat(500), 10).ends_with('…'));
    }
}
