//! Report authenticity (RFC 8460 §3): the DKIM verdict that the operator's own MTA or
//! milter recorded in `Authentication-Results` headers (RFC 8601).
//!
//! Guarantee: only headers the operator's own verifiers wrote are believed. Headers
//! are read from the top of the message (the most recently added) down; those whose
//! authserv-id is in the trusted list are used, and reading stops at the first header
//! with any other authserv-id: from there down, every header may have been written by
//! the sender. A header with a trusted authserv-id below an untrusted one is ignored
//! too (RFC 8601 §5: an MTA must not rely on headers it did not add).
//!
//! Alignment: a `dkim=pass` aligns when its signing domain (`header.d`, else the domain
//! of `header.i`) and one of the report's sender domains (TLS-Report-Submitter, the
//! domain of `contact-info`, the From domain, tried in that order) are the same or one
//! is a subdomain of the other, where the shorter has at least two labels. Any of the
//! three will do, because Microsoft's signature does not cover the TLS-Report-*
//! headers. No I/O.

use serde::Serialize;

/// One `dkim=` result from a trusted header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DkimResult {
    /// Empty inside an [`ArHeader`], which names it once.
    #[serde(
        rename = "authserv-id",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub authserv_id: String,
    pub result: String,
    #[serde(rename = "header-d", default, skip_serializing_if = "Option::is_none")]
    pub header_d: Option<String>,
    #[serde(rename = "header-i", default, skip_serializing_if = "Option::is_none")]
    pub header_i: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// The record's `authentication` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `pass`: a trusted, aligned DKIM pass; otherwise `unauthenticated`.
    pub verdict: &'static str,
    #[serde(rename = "aligned-domain", skip_serializing_if = "Option::is_none")]
    pub aligned_domain: Option<String>,
    /// Which sender identity it aligned with: `tls-report-submitter`, `contact-info`, `from`.
    #[serde(rename = "aligned-with", skip_serializing_if = "Option::is_none")]
    pub aligned_with: Option<&'static str>,
    pub dkim: Vec<DkimResult>,
    /// Every A-R header's DKIM results, trusted or not (see [`ArHeader`]); record
    /// version 3. Empty (and not written) for a report without A-R headers (HTTPS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ArHeader>,
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Removes RFC 5322 comments `( ... )`, nested, honouring quoted strings and escapes.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0u32, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The authserv-id of an A-R header value (the token before the first `;`, without
/// the optional version number).
pub fn authserv_id(value: &str) -> String {
    let clean = strip_comments(value);
    let first = clean.split(';').next().unwrap_or("").trim();
    first
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .to_ascii_lowercase()
}

fn parse_dkim(value: &str, id: &str) -> Vec<DkimResult> {
    let clean = strip_comments(value);
    let mut out = Vec::new();
    for resinfo in clean.split(';').skip(1) {
        let mut tokens = resinfo.split_whitespace();
        let Some((method, result)) = tokens.next().and_then(|t| t.split_once('=')) else {
            continue;
        };
        if !method.trim().eq_ignore_ascii_case("dkim") {
            continue;
        }
        let mut r = DkimResult {
            authserv_id: id.to_owned(),
            result: result.trim().to_ascii_lowercase(),
            header_d: None,
            header_i: None,
            selector: None,
        };
        for t in tokens {
            let Some((k, v)) = t.split_once('=') else {
                continue;
            };
            let v = Some(v.trim_matches('"').to_owned());
            match k.to_ascii_lowercase().as_str() {
                "header.d" => r.header_d = v,
                "header.i" => r.header_i = v,
                "header.s" => r.selector = v,
                _ => {}
            }
        }
        out.push(r);
    }
    out
}

/// DKIM results from the trusted headers at the top of the message.
/// `headers` are A-R values in message order (top first); `trusted` lowercase ids.
///
/// Within that top block, only the first header per authserv-id that carries `dkim=`
/// results counts: a verifier adds one (OpenDKIM writes `dkim=none` for an unsigned
/// message), so a second one with the same id further down was already in the message
/// when it arrived, and is the sender's forgery. Other methods from the same id (an
/// OpenDMARC `dmarc=` header on top, say) do not hide the DKIM header below them.
pub fn trusted_dkim(headers: &[String], trusted: &[String]) -> Vec<DkimResult> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for h in headers {
        let id = authserv_id(h);
        if !trusted.contains(&id) {
            break;
        }
        let results = parse_dkim(h, &id);
        if results.is_empty() || seen.contains(&id) {
            continue;
        }
        seen.push(id);
        out.extend(results);
    }
    out
}

/// What one `Authentication-Results` header said about DKIM, kept in the record
/// whether or not its authserv-id is trusted (`authentication.headers`), so that the
/// operator's commands can judge a stored report again once the operator names the
/// authserv-id (`tlsrpt ... --trusted-authserv-id`), by the same rule as delivery
/// ([`trusted_of`]). Headers without a `dkim=` result are kept too: they end the
/// trusted block at the top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArHeader {
    #[serde(rename = "authserv-id")]
    pub authserv_id: String,
    #[serde(default)]
    pub dkim: Vec<DkimResult>,
}

/// Most A-R headers kept per record (a message passes a handful of verifiers; a sender
/// may add hundreds of its own below them, and reading stops at the first of those).
pub const MAX_KEPT_HEADERS: usize = 16;
/// Most `dkim=` results kept per header.
pub const MAX_KEPT_RESULTS: usize = 8;
/// Longest value kept (bytes, cut on a character boundary).
pub const MAX_KEPT_LEN: usize = 255;

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_KEPT_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Every header's DKIM results, top first, bounded (see the `MAX_KEPT_*` limits).
pub fn observed(headers: &[String]) -> Vec<ArHeader> {
    headers
        .iter()
        .take(MAX_KEPT_HEADERS)
        .map(|h| {
            let id = authserv_id(h);
            let dkim = parse_dkim(h, &id)
                .into_iter()
                .take(MAX_KEPT_RESULTS)
                .map(|r| DkimResult {
                    authserv_id: String::new(),
                    result: cut(&r.result),
                    header_d: r.header_d.as_deref().map(cut),
                    header_i: r.header_i.as_deref().map(cut),
                    selector: r.selector.as_deref().map(cut),
                })
                .collect();
            ArHeader {
                authserv_id: cut(&id),
                dkim,
            }
        })
        .collect()
}

/// [`trusted_dkim`]'s rule over headers already parsed: from the top, while the
/// authserv-id is trusted; per authserv-id the first header with `dkim=` results.
pub fn trusted_of(headers: &[ArHeader], trusted: &[String]) -> Vec<DkimResult> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for h in headers {
        if !trusted.contains(&h.authserv_id) {
            break;
        }
        if h.dkim.is_empty() || seen.contains(&h.authserv_id.as_str()) {
            continue;
        }
        seen.push(&h.authserv_id);
        out.extend(h.dkim.iter().map(|r| DkimResult {
            authserv_id: h.authserv_id.clone(),
            ..r.clone()
        }));
    }
    out
}

/// The authserv-ids an operator must trust for this report to pass: those of the top
/// headers down to the first that carries an aligned `dkim=pass` (sorted, each once);
/// `None` when no trust would make it pass. Trusting a set that holds them gives the
/// same verdict as [`trusted_of`] and [`verdict`] with that set (tested), which is how
/// a database can judge stored reports by a trust given only when it is read.
pub fn needed_ids(
    headers: &[ArHeader],
    submitter: Option<&str>,
    contact_info: Option<&str>,
    from: Option<&str>,
) -> Option<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for h in headers {
        if !ids.contains(&h.authserv_id) {
            ids.push(h.authserv_id.clone());
        }
        if h.dkim.is_empty() {
            continue;
        }
        if verdict(trusted_of(headers, &ids), submitter, contact_info, from).is_pass() {
            ids.sort();
            return Some(ids);
        }
    }
    None
}

fn domain_of(addr: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches("mailto:");
    let a = match (a.rfind('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => &a[l + 1..r],
        _ => a,
    };
    let d = a.rsplit_once('@').map_or(a, |(_, d)| d);
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty() && !d.contains(char::is_whitespace)).then_some(d)
}

/// Same domain, or one a subdomain of the other with the shorter having two labels.
pub fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.trim_end_matches('.').to_ascii_lowercase(),
        b.trim_end_matches('.').to_ascii_lowercase(),
    );
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let (short, long) = if a.len() < b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    short.contains('.') && long.ends_with(&format!(".{short}"))
}

/// The verdict for one report.
pub fn verdict(
    dkim: Vec<DkimResult>,
    submitter: Option<&str>,
    contact_info: Option<&str>,
    from: Option<&str>,
) -> Verdict {
    let identities: Vec<(&'static str, String)> = [
        ("tls-report-submitter", submitter.and_then(domain_of)),
        ("contact-info", contact_info.and_then(domain_of)),
        ("from", from.and_then(domain_of)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    for r in dkim.iter().filter(|r| r.result == "pass") {
        let Some(d) = r
            .header_d
            .clone()
            .or_else(|| r.header_i.as_deref().and_then(domain_of))
        else {
            continue;
        };
        if let Some((with, _)) = identities.iter().find(|(_, id)| aligned(&d, id)) {
            return Verdict {
                verdict: "pass",
                aligned_domain: Some(d.to_ascii_lowercase()),
                aligned_with: Some(with),
                dkim,
                headers: Vec::new(),
            };
        }
    }
    Verdict {
        verdict: "unauthenticated",
        aligned_domain: None,
        aligned_with: None,
        dkim,
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOX: &str = "komijn.test.xmox.nl; iprev=pass policy.iprev=2607:f8b0:4864:20::746; dkim=pass header.d=google.com header.s=20210112 header.a=rsa-sha256 header.i=@google.com; spf=pass smtp.mailfrom=smtp-tls-reporting.bounces.google.com; dmarc=pass header.from=google.com";

    fn t(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_a_real_header() {
        let r = trusted_dkim(&[MOX.to_owned()], &t(&["komijn.test.xmox.nl"]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].result, "pass");
        assert_eq!(r[0].header_d.as_deref(), Some("google.com"));
        assert_eq!(r[0].header_i.as_deref(), Some("@google.com"));
        assert_eq!(r[0].selector.as_deref(), Some("20210112"));
    }

    #[test]
    fn only_the_trusted_top_is_believed() {
        let forged = "mx.example.com; dkim=pass header.d=google.com".to_owned();
        let attacker = "evil.example; dkim=pass header.d=google.com".to_owned();
        let ours = "mx.example.com 1; dkim=fail (bad sig) header.d=google.com".to_owned();
        let trusted = t(&["mx.example.com"]);
        // Forged trusted-looking header below an untrusted one: ignored.
        assert!(trusted_dkim(&[attacker.clone(), forged.clone()], &trusted).is_empty());
        // Ours on top is believed; reading stops at the sender's header, so the forged
        // one below it is not.
        let got = trusted_dkim(&[ours, attacker, forged.clone()], &trusted);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].result, "fail");
        // A forgery with our own id directly below ours: only our (first) one counts.
        let ours_none = "mx.example.com; dkim=none (no signature)".to_owned();
        let dmarc_on_top = "mx.example.com; dmarc=none header.from=google.com".to_owned();
        let got = trusted_dkim(&[dmarc_on_top, ours_none, forged], &trusted);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].result, "none");
        assert_eq!(
            authserv_id("  mx.example.com (comment; x) 1 ; dkim=pass"),
            "mx.example.com"
        );
    }

    #[test]
    fn alignment_rule() {
        assert!(aligned("google.com", "google.com"));
        assert!(aligned("google.com", "smtp-tls-reporting.google.com"));
        assert!(aligned("mail.example.com", "example.com"));
        assert!(!aligned("com", "google.com"));
        assert!(!aligned("evilgoogle.com", "google.com"));
        assert!(!aligned("", "google.com"));
        let pass = |d: &str| DkimResult {
            authserv_id: "mx".into(),
            result: "pass".into(),
            header_d: Some(d.into()),
            header_i: None,
            selector: None,
        };
        let v = verdict(
            vec![pass("microsoft.com")],
            Some("microsoft.com"),
            Some("tlsrpt-noreply@microsoft.com"),
            Some("<tlsrpt-noreply@microsoft.com>"),
        );
        assert_eq!(
            (v.verdict, v.aligned_with),
            ("pass", Some("tls-report-submitter"))
        );
        let v = verdict(
            vec![pass("microsoft.com")],
            None,
            None,
            Some("\"MS\" <tlsrpt-noreply@microsoft.com>"),
        );
        assert_eq!((v.verdict, v.aligned_with), ("pass", Some("from")));
        let v = verdict(
            vec![pass("evil.example")],
            Some("google.com"),
            Some("x@google.com"),
            Some("a@google.com"),
        );
        assert_eq!(v.verdict, "unauthenticated");
        let mut fail = pass("google.com");
        fail.result = "fail".into();
        assert_eq!(
            verdict(vec![fail], Some("google.com"), None, None).verdict,
            "unauthenticated"
        );
    }
}
