//! The text report: per domain what was seen (records, policy, each MX address), then one
//! line per finding, worst first, each ending with the fix. Everything a server or a DNS
//! answer said is shown made safe (`probe::shown`).

use std::fmt::Write;

use super::{Address, DomainReport, status};
use crate::probe::cert::CertInfo;
use crate::probe::shown;
use crate::txt_record::Severity;

pub fn text(reports: &[DomainReport]) -> String {
    let mut o = String::new();
    for r in reports {
        let _ = writeln!(o, "{}  (checked {})", r.domain, r.checked_at);
        match r.tlsrpt.records.as_slice() {
            [] if r.tlsrpt.lookup_failed => {
                o.push_str("  TLSRPT   could not check: the lookup failed (see below)\n")
            }
            [] if r.facts.nxdomain => {
                let _ = writeln!(o, "  TLSRPT   none: {} does not exist", r.domain);
            }
            [] => o.push_str("  TLSRPT   no record\n"),
            recs => {
                for t in recs {
                    let _ = writeln!(o, "  TLSRPT   {}: {:?}", r.tlsrpt.name, shown(t, 200));
                }
            }
        }
        let s = &r.mta_sts;
        if let Some(why) = &s.lookup_failed {
            let _ = writeln!(o, "  MTA-STS  could not check: {}", shown(why, 200));
        } else if s.record.is_empty() && r.facts.nxdomain {
            let _ = writeln!(o, "  MTA-STS  none: {} does not exist", r.domain);
        } else if s.record.is_empty() {
            o.push_str("  MTA-STS  no record\n");
        } else {
            for t in &s.record {
                let _ = writeln!(o, "  MTA-STS  _mta-sts.{}: {:?}", r.domain, shown(t, 200));
            }
            if let Some(p) = &s.policy {
                let mode = p
                    .mode
                    .map(|m| format!("{m:?}").to_ascii_lowercase())
                    .unwrap_or_else(|| "?".into());
                let age = p
                    .max_age
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "?".into());
                let _ = writeln!(
                    o,
                    "           policy: mode {mode}, max_age {age}, mx {}",
                    if p.mx.is_empty() {
                        "(none)".into()
                    } else {
                        p.mx.join(", ")
                    }
                );
            }
            if let Some(c) = &s.certificate {
                let _ = writeln!(
                    o,
                    "           https://mta-sts.{}/ [{}]: {}",
                    r.domain,
                    s.fetched_from.as_deref().unwrap_or("?"),
                    cert_line(c)
                );
            }
        }
        for (i, m) in r.mx.iter().enumerate() {
            let mf = r.facts.mx.get(i).cloned().unwrap_or_default();
            let mut notes = Vec::new();
            if let Some(p) = &m.sts_pattern {
                notes.push(format!("MTA-STS mx: {p}"));
            }
            if mf.tlsa_count > 0 {
                let how = if mf.tlsa_secure {
                    "DNSSEC-validated"
                } else {
                    "not validated"
                };
                notes.push(format!(
                    "{} TLSA record{}, {how}",
                    mf.tlsa_count,
                    if mf.tlsa_count == 1 { "" } else { "s" }
                ));
            }
            let _ = writeln!(
                o,
                "  MX {:<3} {}{}",
                m.preference,
                m.host,
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", notes.join("; "))
                }
            );
            for a in &m.addresses {
                let _ = writeln!(o, "     {:<15} {}", a.address, address_line(a));
            }
        }
        let mut counts = [0usize; 3];
        for f in &r.findings {
            counts[f.severity as usize] += 1;
            let _ = writeln!(o, "  {:<7} {}: {}", f.severity.label(), f.code, f.message);
        }
        let _ = writeln!(
            o,
            "  {} errors, {} warnings, {} infos\n",
            counts[Severity::Error as usize],
            counts[Severity::Warning as usize],
            counts[Severity::Info as usize]
        );
    }
    let _ = writeln!(
        o,
        "status: {}",
        match status(reports) {
            0 => "OK",
            1 => "WARNING",
            2 => "ERROR",
            _ => "UNKNOWN (could not check everything)",
        }
    );
    o
}

fn address_line(a: &Address) -> String {
    if let Some(class) = a.facts.refused {
        return format!("not probed: a {class} address");
    }
    if !a.probed {
        return format!("not probed: {}", a.error.as_deref().unwrap_or("?"));
    }
    let mut parts = Vec::new();
    match a.starttls {
        Some(false) => parts.push("no STARTTLS".to_owned()),
        _ => match (&a.tls_version, &a.cipher) {
            (Some(v), Some(c)) => parts.push(format!("STARTTLS {v} {c}")),
            _ => parts.push(format!(
                "STARTTLS failed: {}",
                a.error.as_deref().unwrap_or("?")
            )),
        },
    }
    if let Some(c) = &a.certificate {
        parts.push(format!("certificate {}", cert_line(c)));
    }
    if a.facts.same_without_sni {
        parts.push("same without SNI".into());
    } else if let Some(c) = &a.certificate_without_sni {
        parts.push(format!("without SNI: {}", cert_line(c)));
    }
    for t in &a.tlsa {
        parts.push(format!(
            "TLSA {}: {}",
            t.record,
            if !t.usable {
                "unusable"
            } else if t.matches {
                "matches"
            } else {
                "no match"
            }
        ));
    }
    parts.join("; ")
}

fn cert_line(c: &CertInfo) -> String {
    let names = if c.names.is_empty() {
        "(no DNS name)".to_owned()
    } else {
        c.names
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let validity = if c.days_left < 0 {
        format!("EXPIRED {}", &c.not_after[..10])
    } else {
        format!("valid until {} ({} days)", &c.not_after[..10], c.days_left)
    };
    format!(
        "{} from {}, {validity}, {}, {}",
        shown(&names, 120),
        shown(&c.issuer, 80),
        if c.trusted { "trusted" } else { "NOT trusted" },
        if c.matches_host {
            "name ok"
        } else {
            "NAME MISMATCH"
        }
    )
}
