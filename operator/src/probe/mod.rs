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
}

impl Limits {
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

/// Why an address is not probed, or None when it is a public unicast address.
pub fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => refused_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return refused_v4(v4);
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
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private (RFC 1918)")),
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
    fn shown_is_one_safe_bounded_line() {
        assert_eq!(shown("220 mx\r\nEVIL", 100), "220 mx\u{FFFD}\u{FFFD}EVIL");
        assert_eq!(shown(&"x".repeat(500), 10).chars().count(), 10);
        assert!(shown(&"x".repeat(500), 10).ends_with('…'));
    }
}
