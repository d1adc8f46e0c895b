//! Which stored reports count: the delivery's DKIM verdict, or the operator's trust
//! given when reading (`--trusted-authserv-id`), judged by the delivery's own rule
//! (tlsrpt_pipe::auth: from the top of the message, while the authserv-id is trusted,
//! the first header per id, an aligned `dkim=pass` only). Pure; no I/O.
//!
//! Guarantee: a report counts when the delivery found a trusted, aligned DKIM pass, or
//! when every authserv-id from the top of its message down to a header with an aligned
//! `dkim=pass` is trusted now — so a report stored before the operator set
//! `--trusted-authserv-id` on the MTA's side counts once the read side names it, and a
//! header of another authserv-id above the trusted one, or a `dkim=fail`, never does.
//! A report left out says why ([`LeftOut`]): the authserv-ids that would make it count,
//! or that it came by HTTPS (no DKIM there), or that nothing would.

use crate::record::Record;

/// Most authserv-ids read from the command line (a database judges with every
/// non-empty subset of them: 2^N - 1 keys).
pub const MAX_IDS: usize = 8;

/// The operator's trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Lower-case authserv-ids, sorted, each once.
    pub ids: Vec<String>,
    /// `--include-unauthenticated`: every report counts.
    pub everything: bool,
}

/// Why a report does not count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeftOut {
    /// Trusting these authserv-ids (space-separated, sorted) would make it count.
    Needs(String),
    /// It came by HTTPS: no DKIM; `TLSRPT_ACCEPT_DOMAINS` keeps strangers out, and
    /// `--include-unauthenticated` counts them.
    Https,
    /// No header carries an aligned `dkim=pass`, or the record predates the kept
    /// headers (record version 3): no trust makes it count.
    Nothing,
}

impl LeftOut {
    /// The database's `trust_needs` value: the ids, `NULL` otherwise.
    pub fn needs(&self) -> Option<&str> {
        match self {
            LeftOut::Needs(ids) => Some(ids),
            _ => None,
        }
    }
}

/// A report judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Counted in the figures.
    pub counted: bool,
    /// Authenticated (by the delivery or by the trust now), whatever `everything` says.
    pub authenticated: bool,
    /// Why it is not authenticated (`None` when it is).
    pub left_out: Option<LeftOut>,
}

impl Trust {
    pub fn new(ids: &[String], everything: bool) -> Result<Trust, String> {
        let mut v: Vec<String> = ids
            .iter()
            .flat_map(|s| s.split([',', ' ']))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v.dedup();
        if v.len() > MAX_IDS {
            return Err(format!(
                "--trusted-authserv-id: at most {MAX_IDS} authserv-ids ({} given)",
                v.len()
            ));
        }
        if let Some(bad) = v.iter().find(|s| !s.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(format!("--trusted-authserv-id {bad:?}: not an authserv-id"));
        }
        Ok(Trust { ids: v, everything })
    }

    /// Why a report is not authenticated by the delivery's verdict alone (`None`: it
    /// is). What a database stores beside it (`trust_needs`).
    pub fn left_out(r: &Record) -> Option<LeftOut> {
        if r.authenticated() {
            return None;
        }
        if r.https() {
            return Some(LeftOut::Https);
        }
        let headers = r.ar_headers();
        match tlsrpt_pipe::auth::needed_ids(
            &headers,
            r.headers.tls_report_submitter.as_deref(),
            r.report.contact_info.as_deref(),
            r.headers.from.as_deref(),
        ) {
            Some(ids) => Some(LeftOut::Needs(ids.join(" "))),
            None => Some(LeftOut::Nothing),
        }
    }

    /// Does trusting these ids authenticate a report that needs `needs`?
    pub fn covers(&self, needs: &str) -> bool {
        !needs.is_empty() && needs.split(' ').all(|id| self.ids.iter().any(|t| t == id))
    }

    pub fn judge(&self, r: &Record) -> Judged {
        let left_out = Trust::left_out(r).filter(|l| match l {
            LeftOut::Needs(n) => !self.covers(n),
            _ => true,
        });
        Judged {
            counted: left_out.is_none() || self.everything,
            authenticated: left_out.is_none(),
            left_out,
        }
    }

    /// Every `trust_needs` value these ids cover: each non-empty subset, sorted and
    /// space-joined (how a database judges by this trust with one `IN`).
    pub fn covered_needs(&self) -> Vec<String> {
        let n = self.ids.len();
        (1u32..(1 << n))
            .map(|mask| {
                (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| self.ids[i].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// The option that would make reports needing `needs` count.
    pub fn advice(left: &LeftOut) -> String {
        match left {
            LeftOut::Needs(ids) => ids
                .split(' ')
                .map(|id| format!("--trusted-authserv-id {id}"))
                .collect::<Vec<_>>()
                .join(" "),
            LeftOut::Https => "HTTPS reports carry no DKIM: keep strangers out with TLSRPT_ACCEPT_DOMAINS on the web server and count them with --include-unauthenticated".into(),
            LeftOut::Nothing => "no trusted, aligned dkim=pass in their Authentication-Results (have the MTA verify DKIM: contrib/dkim/), or stored before tlsrpt-pipe kept the headers: --include-unauthenticated counts them".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(auth: &str) -> String {
        format!(
            r#"{{"version":3,"headers":{{"from":"<noreply-smtp-tls-reporting@google.com>"}},"authentication":{auth},"report":{{"organization-name":"Google Inc.","contact-info":"smtp-tls-reporting@google.com","date-range":{{"start-datetime":"2026-02-08T00:00:00Z","end-datetime":"2026-02-08T23:59:59Z"}},"policies":[]}}}}"#
        )
    }

    fn judge(auth: &str, ids: &[&str]) -> Judged {
        let line = rec(auth);
        let p = crate::record::parse(&line).unwrap();
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        Trust::new(&ids, false).unwrap().judge(&p.record)
    }

    const PASS: &str =
        r#"{"authserv-id":"mx.example.com","dkim":[{"result":"pass","header-d":"google.com"}]}"#;

    #[test]
    fn stored_reports_are_judged_again_by_the_delivery_rule() {
        let untrusted = format!(r#"{{"verdict":"unauthenticated","dkim":[],"headers":[{PASS}]}}"#);
        let j = judge(&untrusted, &[]);
        assert!(!j.counted);
        assert_eq!(j.left_out, Some(LeftOut::Needs("mx.example.com".into())));
        assert!(judge(&untrusted, &["MX.example.com"]).counted);
        assert!(!judge(&untrusted, &["other.example"]).counted);
        // A header of another authserv-id above: both must be trusted.
        let above = format!(
            r#"{{"verdict":"unauthenticated","dkim":[],"headers":[{{"authserv-id":"relay.example","dkim":[]}},{PASS}]}}"#
        );
        assert!(!judge(&above, &["mx.example.com"]).counted);
        assert!(judge(&above, &["mx.example.com", "relay.example"]).counted);
        // dkim=fail never counts; nor a pass that does not align.
        let fail = r#"{"verdict":"unauthenticated","dkim":[],"headers":[{"authserv-id":"mx.example.com","dkim":[{"result":"fail","header-d":"google.com"}]}]}"#;
        assert_eq!(
            judge(fail, &["mx.example.com"]).left_out,
            Some(LeftOut::Nothing)
        );
        let stranger = r#"{"verdict":"unauthenticated","dkim":[],"headers":[{"authserv-id":"mx.example.com","dkim":[{"result":"pass","header-d":"evil.example"}]}]}"#;
        assert!(!judge(stranger, &["mx.example.com"]).counted);
        // The first header per id counts: a forged pass below our dkim=none does not.
        let forged = r#"{"verdict":"unauthenticated","dkim":[],"headers":[{"authserv-id":"mx.example.com","dkim":[{"result":"none"}]},{"authserv-id":"mx.example.com","dkim":[{"result":"pass","header-d":"google.com"}]}]}"#;
        assert_eq!(
            judge(forged, &["mx.example.com"]).left_out,
            Some(LeftOut::Nothing)
        );
        // The delivery's pass stands; a record before version 3 is judged as stored.
        assert!(judge(r#"{"verdict":"pass","dkim":[]}"#, &[]).counted);
        assert_eq!(
            judge(
                r#"{"verdict":"unauthenticated","dkim":[]}"#,
                &["mx.example.com"]
            )
            .left_out,
            Some(LeftOut::Nothing)
        );
    }

    #[test]
    fn subsets_for_the_database() {
        let t = Trust::new(&["b".into(), "a,c".into()], false).unwrap();
        let mut c = t.covered_needs();
        c.sort();
        assert_eq!(c, vec!["a", "a b", "a b c", "a c", "b", "b c", "c"]);
        for n in &c {
            assert!(t.covers(n));
        }
        assert!(!t.covers("a d"));
        assert!(Trust::new(&(0..9).map(|i| format!("x{i}")).collect::<Vec<_>>(), false).is_err());
    }
}
