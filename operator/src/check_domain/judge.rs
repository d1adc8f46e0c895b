//! Observations → findings, judged by the policy that applies to each MX, as a sender
//! would (pure).
//!
//! - MTA-STS in `enforce` or `testing` mode: senders validate the certificate (WebPKI,
//!   the MX name) and report any failure: every certificate problem is an **error**.
//! - DANE, when the MX and TLSA answers are DNSSEC-validated and a record is usable: the
//!   TLSA match decides; a DANE-EE match makes names, dates and issuers irrelevant (RFC
//!   7672 §3.1.1), so such problems are only **info** — unless MTA-STS applies too.
//! - Neither (opportunistic TLS): senders accept any certificate and report nothing, so
//!   certificate problems are **warnings**.
//!
//! Where a sender would report the problem, the code is the RFC 8460 result type (§4.3);
//! every message ends with what to do.

use super::{Address, DomainReport, Found, Mx};
use crate::probe::cert::Failure;
use crate::probe::mta_sts::Mode;
use crate::probe::{smtp, tls};
use crate::txt_record::Severity;

/// Fills `r.findings`. `expiry_days`: warn when a certificate expires within that many.
pub fn judge(r: &mut DomainReport, expiry_days: i64) {
    let mut out: Vec<Found> = Vec::new();
    let d = r.domain.clone();
    let mut push = |code: &'static str, severity: Severity, host: Option<&str>, message: String| {
        out.push(Found {
            code,
            severity,
            host: host.map(str::to_owned),
            message,
        })
    };

    // ---- the TLSRPT record (check-record's findings) ----------------------------------
    for f in &r.tlsrpt.findings {
        push(f.code, f.severity, None, format!("TLSRPT: {}", f.message));
    }

    // ---- DNS of the domain ----------------------------------------------------------
    let f = &r.facts;
    if f.nxdomain {
        push(
            "domain-nxdomain",
            Severity::Error,
            None,
            format!("{d} does not exist (NXDOMAIN): check the name, or the delegation of the zone"),
        );
    }
    if let Some(why) = &f.mx_bogus {
        push(
            "dnssec-invalid",
            Severity::Error,
            None,
            format!(
                "the MX records of {d} fail DNSSEC validation ({why}): validating senders cannot deliver at all; re-sign the zone and check the DS record at the parent"
            ),
        );
    }
    for why in &f.lookup_failed {
        push(
            "lookup-failed",
            Severity::Error,
            None,
            format!(
                "a DNS lookup failed ({why}): the check is incomplete; check the domain's name servers, or the resolver (--nameserver)"
            ),
        );
    }
    if f.null_mx {
        push(
            "null-mx",
            Severity::Info,
            None,
            format!(
                "{d} has a null MX (RFC 7505): it accepts no mail, so there is nothing to protect"
            ),
        );
    }
    if f.implicit_mx {
        push(
            "no-mx",
            Severity::Info,
            None,
            format!(
                "{d} has no MX record: senders deliver to its own address (the implicit MX), checked as the MX host {d}"
            ),
        );
    }

    // ---- MTA-STS -------------------------------------------------------------------
    let sts_mode = if r.mta_sts.record.is_empty() {
        None
    } else {
        r.mta_sts.policy.as_ref().and_then(|p| p.mode)
    };
    // Senders apply the policy only when all of it holds: one record with an id, the
    // policy fetched (200, no redirect) from a WebPKI-valid host, and valid.
    let sts_valid = r.mta_sts.id.is_some()
        && f.sts_fetch_error.is_none()
        && r.mta_sts
            .certificate
            .as_ref()
            .is_some_and(|c| c.failure.is_none())
        && !f
            .sts_policy_findings
            .iter()
            .any(|x| x.severity == Severity::Error);
    let sts_applies = sts_valid && matches!(sts_mode, Some(Mode::Enforce | Mode::Testing));
    for f in &f.sts_record_findings {
        push(
            f.code,
            f.severity,
            Some(&format!("_mta-sts.{d}")),
            f.message.clone(),
        );
    }
    let policy_host = format!("mta-sts.{d}");
    if !r.mta_sts.record.is_empty() {
        if let Some(why) = &f.sts_fetch_error {
            push(
                "sts-policy-fetch-error",
                Severity::Error,
                Some(&policy_host),
                format!(
                    "the MTA-STS policy could not be fetched: {why}; senders without a cached policy apply none, and report sts-policy-fetch-error"
                ),
            );
        }
        if let Some(c) = &r.mta_sts.certificate
            && let Some(failure) = c.failure
        {
            push(
                "sts-webpki-invalid",
                Severity::Error,
                Some(&policy_host),
                format!(
                    "the certificate of {policy_host} {}: senders refuse the policy (RFC 8461 §3.3); serve it with a publicly trusted certificate for {policy_host}",
                    cert_problem(failure, c)
                ),
            );
        }
        for f in &f.sts_policy_findings {
            push(
                f.code,
                f.severity,
                Some(&policy_host),
                format!("policy: {}", f.message),
            );
        }
        if let Some(Mode::None) = sts_mode {
            push("sts-mode-none", Severity::Info, Some(&policy_host), "the MTA-STS policy is in mode none: senders apply nothing (the way to withdraw a policy)".into());
        }
    } else if !f.nxdomain && !f.null_mx && r.mta_sts.lookup_failed.is_none() {
        // Only an answer that there is no record means none: a failed lookup is
        // "could not check" (its lookup-failed finding), never "no policy".
        push(
            "sts-none",
            Severity::Info,
            None,
            format!(
                "no MTA-STS record at _mta-sts.{d}: senders that do not use DANE deliver with opportunistic TLS and accept any certificate"
            ),
        );
    }

    // ---- each MX ---------------------------------------------------------------------
    for (i, m) in r.mx.iter().enumerate() {
        let mf = f.mx.get(i).cloned().unwrap_or_default();
        let host = m.host.as_str();
        if sts_applies && m.sts_pattern.is_none() {
            let pats = r
                .mta_sts
                .policy
                .as_ref()
                .map(|p| p.mx.join(", "))
                .unwrap_or_default();
            let (sev, what) = if sts_mode == Some(Mode::Enforce) {
                (
                    Severity::Error,
                    "in enforce mode senders refuse to deliver to it",
                )
            } else {
                (
                    Severity::Warning,
                    "in testing mode senders deliver but report it",
                )
            };
            push(
                "sts-mx-not-covered",
                sev,
                Some(host),
                format!(
                    "MX {host} matches no mx: line of the MTA-STS policy ({pats}): {what}; add \"mx: {host}\" to the policy (and change the record's id)"
                ),
            );
        }
        if m.addresses.is_empty() && mf.address_problems.is_empty() {
            push(
                "mx-no-address",
                Severity::Error,
                Some(host),
                format!(
                    "MX {host} has no A or AAAA record: senders cannot deliver to it; publish its address or remove the MX record"
                ),
            );
        }
        for p in mf
            .address_problems
            .iter()
            .filter(|p| p.contains("DNSSEC-bogus"))
        {
            push(
                "dnssec-invalid",
                Severity::Error,
                Some(host),
                format!("{p}: validating senders cannot reach this MX; fix the zone's signatures"),
            );
        }
        // DANE's standing for this MX.
        let tlsa_usable = m.addresses.iter().flat_map(|a| &a.tlsa).any(|t| t.usable)
            || (mf.tlsa_count > 0 && m.addresses.iter().all(|a| a.tlsa.is_empty()));
        let dane = mf.tlsa_count > 0 && mf.tlsa_secure && f.mx_secure && mf.addresses_secure;
        if let Some(why) = &mf.tlsa_bogus {
            push(
                "dnssec-invalid",
                Severity::Error,
                Some(host),
                format!(
                    "the TLSA lookup of _25._tcp.{host} fails DNSSEC validation ({why}): DANE senders defer all mail to this MX; re-sign the zone, check the DS record at the parent"
                ),
            );
        } else if let (true, Some(why)) = (mf.tlsa_count > 0, &f.ad_untrusted) {
            push(
                "dnssec-not-validated-here",
                Severity::Warning,
                Some(host),
                format!(
                    "_25._tcp.{host} has TLSA records, but DANE cannot be judged from here: {why}"
                ),
            );
        } else if mf.tlsa_count > 0 && !mf.tlsa_secure {
            push(
                "tlsa-not-dnssec-signed",
                Severity::Warning,
                Some(host),
                format!(
                    "_25._tcp.{host} has TLSA records, but the answer is not DNSSEC-validated (an unsigned zone, or a resolver that does not validate: try --nameserver with a validating one): senders ignore them; sign the zone, or remove the records"
                ),
            );
        } else if mf.tlsa_count > 0 && !f.mx_secure {
            push(
                "tlsa-mx-insecure",
                Severity::Warning,
                Some(host),
                format!(
                    "_25._tcp.{host} has validated TLSA records, but the MX records of {d} are not DNSSEC-validated: senders do not use DANE for it (RFC 7672 §2.2.1); sign the zone of {d}"
                ),
            );
        } else if mf.tlsa_count > 0 && !mf.addresses_secure && !m.addresses.is_empty() {
            push(
                "tlsa-address-insecure",
                Severity::Warning,
                Some(host),
                format!(
                    "_25._tcp.{host} has validated TLSA records, but the address records of {host} are not DNSSEC-validated: senders do not use DANE for it (RFC 7672 §2.2.2); sign the zone that holds them"
                ),
            );
        } else if dane && !tlsa_usable {
            push(
                "tlsa-unusable",
                Severity::Warning,
                Some(host),
                format!(
                    "no TLSA record at _25._tcp.{host} is usable for SMTP (only DANE-TA(2) and DANE-EE(3), selector 0/1, matching 0/1/2 are: RFC 7672 §3.1.3): senders insist on TLS but authenticate nothing; publish a 3 1 1 record"
                ),
            );
        }
        for a in &m.addresses {
            judge_address(
                &mut push,
                m,
                a,
                sts_applies,
                dane && tlsa_usable,
                expiry_days,
            );
        }
    }
    if r.mx
        .iter()
        .flat_map(|m| &m.addresses)
        .any(|a| a.facts.out_of_time)
    {
        r.facts
            .lookup_failed
            .push("the check ran out of time before every address was probed".into());
    }
    if !r.mx.is_empty()
        && r.mx
            .iter()
            .flat_map(|m| &m.addresses)
            .all(|a| !a.probed && !a.facts.out_of_time)
    {
        let reachable_tried =
            r.mx.iter()
                .flat_map(|m| &m.addresses)
                .any(|a| a.facts.refused.is_none());
        if reachable_tried {
            r.facts
                .lookup_failed
                .push("no MX address answered on port 25 from here".into());
            push(
                "no-mx-reachable",
                Severity::Error,
                None,
                "no MX address could be probed from here (is outgoing port 25 blocked on this network?): the TLS of the MX hosts is not known".into(),
            );
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    r.findings = out;
}

fn judge_address(
    push: &mut impl FnMut(&'static str, Severity, Option<&str>, String),
    m: &Mx,
    a: &Address,
    sts: bool,
    dane: bool,
    expiry_days: i64,
) {
    let host = m.host.as_str();
    let at = format!("{host} [{}]", a.address);
    let f = &a.facts;
    // How much a problem of the TLS session counts, by the policies that apply.
    let tls_sev = if sts || dane {
        Severity::Error
    } else {
        Severity::Warning
    };
    let policy_words = match (sts, dane) {
        (true, true) => "MTA-STS and DANE senders do not deliver (and report it)",
        (true, false) => "MTA-STS senders do not deliver in enforce mode (and report it)",
        (false, true) => "DANE senders do not deliver (and report it)",
        (false, false) => {
            "senders fall back to plaintext (no policy applies, so nothing reports it)"
        }
    };
    if f.out_of_time {
        push(
            "check-timed-out",
            Severity::Warning,
            Some(host),
            format!(
                "{at}: not probed, the check of the domain ran out of time; give a longer --timeout"
            ),
        );
        return;
    }
    if let Some(class) = f.refused {
        push(
            "address-refused",
            Severity::Warning,
            Some(host),
            format!(
                "{host} resolves to {}, a {class} address: not probed (--allow-private-addresses probes it); senders on the Internet cannot reach it",
                a.address
            ),
        );
        return;
    }
    if let Some(e) = &f.smtp_error {
        let (code, sev) = match e {
            smtp::Error::Connect(_) => ("smtp-connect-failed", Severity::Warning),
            smtp::Error::NoRoute(_) => ("address-unreachable-from-here", Severity::Info),
            smtp::Error::Timeout(_) => ("smtp-timeout", Severity::Warning),
            smtp::Error::Closed(_) => ("smtp-closed", Severity::Warning),
            smtp::Error::Protocol(_) => ("smtp-protocol-error", Severity::Error),
            smtp::Error::Refused(..) => ("smtp-refused", Severity::Warning),
        };
        let fix = match e {
            smtp::Error::Connect(_) | smtp::Error::Timeout(_) => {
                "check that the MX listens on port 25 (and that this network lets port 25 out)"
            }
            smtp::Error::Protocol(_) => {
                "what answers on port 25 is not a working SMTP server; check the service there"
            }
            smtp::Error::NoRoute(_) => {
                "not probed from here (no route to that address family); check it from a host that has one"
            }
            _ => "check the MX's logs (this host may be refused as a client)",
        };
        push(code, sev, Some(host), format!("{at}: {e}; {fix}"));
        return;
    }
    if a.starttls == Some(false) {
        push(
            "starttls-not-supported",
            tls_sev,
            Some(host),
            format!(
                "{at} does not offer STARTTLS: {policy_words}; enable TLS on the MX (Postfix: smtpd_tls_security_level = may and smtpd_tls_chain_files; Exim: tls_advertise_hosts = * with a certificate)"
            ),
        );
        return;
    }
    if let Some(r) = &f.starttls_refused {
        push(
            "starttls-not-supported",
            tls_sev,
            Some(host),
            format!(
                "{at} offers STARTTLS but refuses it ({r}): {policy_words}; check the MX's TLS key and certificate files (its log says why)"
            ),
        );
        return;
    }
    if let Some(e) = &f.tls_error {
        let (code, fix) = match e {
            tls::Error::VersionTooOld(_) => (
                "tls-version-old",
                "enable TLS 1.2 and 1.3 (Postfix: smtpd_tls_protocols = >=TLSv1.2; RFC 8461 §4.4 requires TLS 1.2 for MTA-STS)",
            ),
            tls::Error::Timeout => (
                "smtp-timeout",
                "the MX stalls in the TLS handshake; check its TLS set-up and load",
            ),
            tls::Error::Failed(_) => (
                "tls-handshake-failed",
                "check the MX's TLS configuration (ciphers, key, certificate files); its log says why",
            ),
        };
        let sev = if code == "smtp-timeout" {
            Severity::Warning
        } else {
            tls_sev
        };
        push(
            code,
            sev,
            Some(host),
            format!("{at}: {e}: {policy_words}; {fix}"),
        );
        return;
    }
    if let Some(v) = &a.tls_version
        && v != "TLSv1.2"
        && v != "TLSv1.3"
    {
        push(
            "tls-version-old",
            tls_sev,
            Some(host),
            format!(
                "{at} negotiates {v}: senders require TLS 1.2 or later; enable TLS 1.2 and 1.3"
            ),
        );
    }
    // DANE: the TLSA records decide.
    let dane_ee_ok = dane
        && a.tlsa
            .iter()
            .any(|t| t.usable && t.matches && t.record.starts_with('3'));
    let dane_ok = dane && a.tlsa.iter().any(|t| t.usable && t.matches);
    if dane && !dane_ok {
        let usable = a.tlsa.iter().filter(|t| t.usable).count();
        let publish = f
            .spki_sha256
            .as_deref()
            .map(|h| format!("publish \"_25._tcp.{host}. TLSA 3 1 1 {h}\" (the current key)"))
            .unwrap_or_else(|| "publish a TLSA record for the current key".into());
        let why = a
            .tlsa
            .iter()
            .find_map(|t| t.problem.clone())
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        push(
            "tlsa-invalid",
            Severity::Error,
            Some(host),
            format!(
                "none of the {usable} usable TLSA records at _25._tcp.{host} matches the certificate of {at}{why}: DANE senders do not deliver; {publish}, and at the next key change publish the new key's record before switching"
            ),
        );
    }
    // The certificate, judged by each policy that applies.
    if let Some(c) = &a.certificate {
        let sev = if sts {
            Severity::Error
        } else if dane_ee_ok {
            Severity::Info
        } else {
            Severity::Warning
        };
        let whose = if sts {
            "MTA-STS senders refuse it (and report it)"
        } else if dane_ee_ok {
            "DANE-EE senders ignore it (the TLSA record matches), but MTA-STS or other validating senders would not"
        } else if dane {
            "DANE senders rely on the TLSA record instead"
        } else {
            "no policy applies, so senders accept it today; MTA-STS would fail on it"
        };
        // (code, what is wrong, what to do)
        let mut problems: Vec<(&'static str, String, &str)> = Vec::new();
        if c.failure == Some(Failure::Expired) {
            problems.push((
                "certificate-expired",
                format!("expired {} ({} days ago)", &c.not_after[..10], -c.days_left),
                "renew it, and check that the renewal job runs and reloads the MTA (postfix reload; systemctl reload exim4)",
            ));
        } else if c.failure == Some(Failure::NotYetValid) {
            problems.push((
                "certificate-expired",
                format!("is not valid before {}", c.not_before),
                "check the clocks, or install the previous certificate again",
            ));
        }
        if !c.trusted {
            let why = c.verify_error.clone().unwrap_or_default();
            let code = if c.failure == Some(Failure::Validation) {
                "validation-failure"
            } else {
                "certificate-not-trusted"
            };
            problems.push((
                code,
                format!("is not trusted ({why})"),
                "use a certificate from a public CA for server authentication, and send the whole chain (Postfix: smtpd_tls_chain_files = key, certificate, intermediates)",
            ));
        }
        let names = if c.names.is_empty() {
            "no DNS name".to_owned()
        } else {
            c.names.join(", ")
        };
        let name_fix = format!("get a certificate that names {host} (subjectAltName)");
        if !c.matches_host {
            problems.push((
                "certificate-host-mismatch",
                format!("is for {names}, not {host}"),
                &name_fix,
            ));
        }
        for (code, what, fix) in problems {
            push(
                code,
                sev,
                Some(host),
                format!("the certificate of {at} {what}: {whose}; {fix}"),
            );
        }
        if c.failure != Some(Failure::Expired) && c.days_left >= 0 && c.days_left < expiry_days {
            let sev = if dane_ee_ok && !sts {
                Severity::Info
            } else {
                Severity::Warning
            };
            push(
                "certificate-expires-soon",
                sev,
                Some(host),
                format!(
                    "the certificate of {at} expires {} (in {} days): check that the renewal job runs and reloads the MTA",
                    &c.not_after[..10],
                    c.days_left
                ),
            );
        }
    }
    if let Some(c) = &a.certificate_without_sni
        && !c.matches_host
        && a.certificate.as_ref().is_some_and(|s| s.matches_host)
    {
        push(
            "no-sni-certificate-mismatch",
            Severity::Warning,
            Some(host),
            format!(
                "without SNI, {at} shows a certificate for {} instead of {host}: senders that send no SNI report certificate-host-mismatch; make the certificate for {host} the default one (Postfix: smtpd_tls_chain_files; the others in tls_server_sni_maps)",
                if c.names.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    c.names.join(", ")
                }
            ),
        );
    }
    if let Some(e) = &f.no_sni_error {
        push(
            "no-sni-failed",
            Severity::Warning,
            Some(host),
            format!("without SNI, {at} fails: {e}; senders that send no SNI cannot use TLS there"),
        );
    }
}

fn cert_problem(f: Failure, c: &crate::probe::cert::CertInfo) -> String {
    match f {
        Failure::Expired => format!("expired {}", &c.not_after[..10]),
        Failure::NotYetValid => format!("is not valid before {}", c.not_before),
        Failure::HostMismatch => format!("is for {}", c.names.join(", ")),
        Failure::NotTrusted => format!(
            "is not trusted ({})",
            c.verify_error.clone().unwrap_or_default()
        ),
        Failure::Validation => format!(
            "does not validate ({})",
            c.verify_error.clone().unwrap_or_default()
        ),
    }
}
