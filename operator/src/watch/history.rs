//! What `tlsrpt watch` remembers of a domain between runs, and the findings only a
//! memory can give. Pure: observations in, history and findings out; no I/O (the file
//! is `state`'s).
//!
//! A domain's history is a list of stretches: a value (the `_mta-sts` id, the parsed
//! policy, an MX host, an MX's certificate key, a TLSA record) and the first and last
//! run that saw it. Each kind of value is updated only by a run that *observed* it: a
//! failed lookup or an unreachable host observes nothing, so it never reads as "gone".
//! A value seen again after an absence starts a new stretch, so that "since when" is
//! always the start of what holds now.
//!
//! Limits: at most [`MAX_ENTRIES`] stretches per domain (the oldest forgotten first),
//! none older than the retention given to [`History::update`], and each value's text
//! bounded where it is built.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check_domain::{DomainReport, Found};
use crate::probe::mta_sts::Mode;
use crate::txt_record::Severity;

/// Most stretches kept per domain.
pub const MAX_ENTRIES: usize = 256;
/// Most MX hosts, and TLSA records or certificates per MX host, remembered per run.
const MAX_PER_KIND: usize = 32;
/// The policy text kept (a real policy is a few hundred bytes).
const MAX_POLICY_TEXT: usize = 4096;

/// One domain's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// When each kind of value was last observed (`sts-record`, `sts-policy`, `mx`,
    /// `certificate:MX`, `tlsa:MX`).
    #[serde(default)]
    pub observed: BTreeMap<String, i64>,
    #[serde(default)]
    pub seen: Vec<Seen>,
    /// The last run that checked the domain: when, its exit status, what it found.
    #[serde(default, rename = "checked-at")]
    pub checked_at: i64,
    #[serde(default)]
    pub status: u8,
    #[serde(default)]
    pub findings: Vec<Stored>,
}

/// A finding as kept for `summary` and the digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stored {
    pub code: String,
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub message: String,
}

/// One stretch: a value and the first and last run that saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Seen {
    #[serde(flatten)]
    pub what: What,
    pub first: i64,
    pub last: i64,
}

/// The values remembered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    /// `_mta-sts.DOMAIN` publishes a record with this id.
    StsId { id: String },
    /// `_mta-sts.DOMAIN` publishes no MTA-STS record.
    StsNoRecord,
    /// The policy as fetched and parsed (RFC 8461 §3.2).
    StsPolicy {
        mode: String,
        #[serde(rename = "max-age")]
        max_age: u64,
        mx: Vec<String>,
        text: String,
    },
    /// A host of the MX set.
    Mx { host: String },
    /// The key an MX host's certificate carries (SHA-256 of its SubjectPublicKeyInfo),
    /// its expiry, and the TLSA records that matched it when it was last seen.
    Certificate {
        mx: String,
        #[serde(rename = "spki-sha256")]
        spki_sha256: String,
        #[serde(rename = "not-after")]
        not_after: i64,
        #[serde(default)]
        tlsa: Vec<String>,
    },
    /// A TLSA record at `_25._tcp.MX`.
    Tlsa { mx: String, record: String },
    /// A kind written by a later version: kept out of the judgement.
    #[serde(other)]
    Other,
}

impl What {
    /// The kind of value: what one observation covers.
    pub fn kind(&self) -> String {
        match self {
            What::StsId { .. } | What::StsNoRecord => "sts-record".into(),
            What::StsPolicy { .. } => "sts-policy".into(),
            What::Mx { .. } => "mx".into(),
            What::Certificate { mx, .. } => format!("certificate:{mx}"),
            What::Tlsa { mx, .. } => format!("tlsa:{mx}"),
            What::Other => "other".into(),
        }
    }

    /// Two values are the same stretch when this is equal (a certificate's matching
    /// TLSA records may change without it).
    fn identity(&self) -> What {
        match self {
            What::Certificate {
                mx,
                spki_sha256,
                not_after,
                ..
            } => What::Certificate {
                mx: mx.clone(),
                spki_sha256: spki_sha256.clone(),
                not_after: *not_after,
                tlsa: Vec::new(),
            },
            w => w.clone(),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            What::StsId { id } => format!("_mta-sts id \"{id}\""),
            What::StsNoRecord => "no _mta-sts record".into(),
            What::StsPolicy {
                mode, max_age, mx, ..
            } => format!(
                "MTA-STS policy: mode {}, max_age {max_age}, mx {}",
                if mode.is_empty() { "(none)" } else { mode },
                mx.join(" ")
            ),
            What::Mx { host } => format!("MX host {host}"),
            What::Certificate {
                mx,
                spki_sha256,
                not_after,
                ..
            } => format!(
                "certificate of {mx}: key sha256 {}…, expires {}",
                crate::render::safe::cut(spki_sha256, 16),
                &crate::window::rfc3339(*not_after)[..10]
            ),
            What::Tlsa { mx, record } => format!("TLSA of {mx}: {record}"),
            What::Other => "(a value of a later version)".into(),
        }
    }
}

/// What one run observed, by kind: `(kind, values)`. A kind that is absent was not
/// observed (its lookup failed, its host was not reached).
pub fn observations(r: &DomainReport) -> Vec<(String, Vec<What>)> {
    let mut out: Vec<(String, Vec<What>)> = Vec::new();
    let f = &r.facts;
    let mx_failed = f.mx_bogus.is_some()
        || f.lookup_failed
            .iter()
            .any(|l| l.starts_with(&format!("{} MX:", r.domain)));
    // The _mta-sts record: its id, or that there is none (a record that breaks the
    // grammar has no id senders use: not observed either way).
    if r.mta_sts.lookup_failed.is_none() {
        if r.mta_sts.record.is_empty() {
            if !mx_failed || f.nxdomain {
                out.push(("sts-record".into(), vec![What::StsNoRecord]));
            }
        } else if let Some(id) = &r.mta_sts.id {
            out.push((
                "sts-record".into(),
                vec![What::StsId {
                    id: crate::probe::shown(id, 64),
                }],
            ));
        }
    }
    if let (Some(p), None) = (&r.mta_sts.policy, &f.sts_fetch_error) {
        let mut mx: Vec<String> =
            p.mx.iter()
                .take(MAX_PER_KIND)
                .map(|m| crate::probe::shown(&m.to_ascii_lowercase(), 255))
                .collect();
        mx.sort();
        mx.dedup();
        let text = crate::probe::shown(&p.lines.join("\n").replace('\n', " / "), MAX_POLICY_TEXT);
        out.push((
            "sts-policy".into(),
            vec![What::StsPolicy {
                mode: p.mode.map(Mode::label).unwrap_or_default().into(),
                max_age: p.max_age.unwrap_or(0),
                mx,
                text,
            }],
        ));
    }
    if !mx_failed {
        out.push((
            "mx".into(),
            f.mx_set
                .iter()
                .take(MAX_PER_KIND)
                .map(|h| What::Mx { host: h.clone() })
                .collect(),
        ));
    }
    for (m, mf) in r.mx.iter().zip(&f.mx) {
        if mf.tlsa_failed.is_none() && mf.tlsa_bogus.is_none() {
            out.push((
                format!("tlsa:{}", m.host),
                mf.tlsa_records
                    .iter()
                    .take(MAX_PER_KIND)
                    .map(|t| What::Tlsa {
                        mx: m.host.clone(),
                        record: t.clone(),
                    })
                    .collect(),
            ));
        }
        let mut certs: Vec<What> = Vec::new();
        for a in &m.addresses {
            if let (Some(c), Some(spki)) = (&a.certificate, &a.facts.spki_sha256) {
                let w = What::Certificate {
                    mx: m.host.clone(),
                    spki_sha256: spki.clone(),
                    not_after: c.not_after_ts,
                    tlsa: a
                        .tlsa
                        .iter()
                        .filter(|t| t.matches)
                        .map(|t| t.record.clone())
                        .collect(),
                };
                if !certs.iter().any(|x| x.identity() == w.identity()) && certs.len() < MAX_PER_KIND
                {
                    certs.push(w);
                }
            }
        }
        if !certs.is_empty() {
            out.push((format!("certificate:{}", m.host), certs));
        }
    }
    out
}

impl History {
    /// Adds one run's observations at `now`; forgets stretches that ended more than
    /// `keep` seconds ago, and the oldest beyond [`MAX_ENTRIES`].
    pub fn update(&mut self, observed: Vec<(String, Vec<What>)>, now: i64, keep: i64) {
        for (kind, values) in observed {
            let before = self.observed.get(&kind).copied();
            for w in values {
                let id = w.identity();
                let latest = self.seen.iter().rposition(|s| s.what.identity() == id);
                match (latest, before) {
                    // Seen at the previous observation of its kind: the stretch goes on.
                    (Some(i), Some(b)) if self.seen[i].last >= b => {
                        self.seen[i].last = now;
                        self.seen[i].what = w;
                    }
                    _ => self.seen.push(Seen {
                        what: w,
                        first: now,
                        last: now,
                    }),
                }
            }
            self.observed.insert(kind, now);
        }
        self.seen
            .retain(|s| s.last >= now.saturating_sub(keep) && s.what != What::Other);
        if self.seen.len() > MAX_ENTRIES {
            let mut by_last: Vec<i64> = self.seen.iter().map(|s| s.last).collect();
            by_last.sort_unstable_by(|a, b| b.cmp(a));
            let cut = by_last[MAX_ENTRIES - 1];
            let mut n = 0;
            self.seen.retain(|s| {
                let keep = s.last > cut || (s.last == cut && n < MAX_ENTRIES);
                n += usize::from(keep);
                keep
            });
        }
        let kinds: std::collections::BTreeSet<String> =
            self.seen.iter().map(|s| s.what.kind()).collect();
        self.observed.retain(|k, _| kinds.contains(k));
    }

    /// The values of `kind` the last observation saw (empty when it was not observed at
    /// `now`).
    fn current(&self, kind: &str, now: i64) -> Vec<&Seen> {
        if self.observed.get(kind) != Some(&now) {
            return Vec::new();
        }
        self.seen
            .iter()
            .filter(|s| s.last == now && s.what.kind() == kind)
            .collect()
    }

    /// The stretch of `kind` that ended last before `t`.
    fn before(&self, kind: &str, t: i64) -> Option<&Seen> {
        self.seen
            .iter()
            .filter(|s| s.what.kind() == kind && s.last < t)
            .max_by_key(|s| s.last)
    }

    /// When the oldest remembered value of `kind` was first seen.
    pub fn watched_since(&self, kind: &str) -> Option<i64> {
        self.seen
            .iter()
            .filter(|s| s.what.kind() == kind)
            .map(|s| s.first)
            .min()
    }

    /// The findings only history gives, for the run at `now` (after [`update`]).
    ///
    /// [`update`]: History::update
    pub fn findings(&self, domain: &str, now: i64) -> Vec<Found> {
        let mut out = Vec::new();
        let at = |t: i64| crate::window::rfc3339(t);
        let policy = self.current("sts-policy", now).into_iter().next();
        let record = self.current("sts-record", now).into_iter().next();
        if let Some(cur) = policy
            && let What::StsPolicy {
                mode, max_age: _, ..
            } = &cur.what
            && let Some(prev) = self.before("sts-policy", cur.first)
            && let What::StsPolicy {
                mode: old_mode,
                max_age: old_max_age,
                ..
            } = &prev.what
        {
            let until = cur.first.saturating_add(*old_max_age as i64);
            let diff = policy_diff(&prev.what, &cur.what);
            if now < until && !diff.is_empty() {
                // RFC 8461 §3.1: senders fetch the policy again only when the id changes.
                if let Some(r) = record
                    && let What::StsId { id } = &r.what
                    && r.first <= prev.last
                {
                    out.push(Found {
                        code: "sts-policy-changed-without-id",
                        severity: Severity::Error,
                        host: None,
                        message: format!(
                            "the MTA-STS policy of {domain} changed at {} ({diff}) but the id in _mta-sts.{domain} is still \"{id}\": senders that cached the old policy keep it for its max_age (until {}) and never fetch the new one; change the id (for example to {})",
                            at(cur.first),
                            at(until),
                            tlsrpt_pipe::datetime::Timestamp(now).compact()
                        ),
                    });
                }
                let rank = |m: &str| match m {
                    "enforce" => Mode::Enforce.rank(),
                    "testing" => Mode::Testing.rank(),
                    _ => Mode::None.rank(),
                };
                if rank(mode) < rank(old_mode) {
                    out.push(Found {
                        code: "sts-mode-lowered",
                        severity: Severity::Warning,
                        host: None,
                        message: format!(
                            "the MTA-STS mode of {domain} went from {old_mode} to {} at {}: senders no longer refuse to deliver without valid TLS; if that was not meant, publish mode: {old_mode} again with a new id",
                            if mode.is_empty() { "(none)" } else { mode },
                            at(cur.first)
                        ),
                    });
                }
            }
        }
        // The record withdrawn while senders still cache an enforcing policy.
        if let Some(r) = record
            && r.what == What::StsNoRecord
            && let Some(prev) = self.before("sts-policy", now)
            && let What::StsPolicy { mode, max_age, .. } = &prev.what
            && mode != "none"
        {
            let until = prev.last.saturating_add(*max_age as i64);
            if now < until {
                out.push(Found {
                    code: "sts-policy-gone",
                    severity: Severity::Warning,
                    host: None,
                    message: format!(
                        "_mta-sts.{domain} publishes no MTA-STS record since {}, but senders cache the last policy (mode {mode}, max_age {max_age}) until {}: they keep applying it; to withdraw MTA-STS, serve mode: none with a new id for a max_age first (RFC 8461 §8.3)",
                        at(r.first),
                        at(until)
                    ),
                });
            }
        }
        // A certificate rolled while the TLSA records still name only the old key.
        for kind in self
            .observed
            .keys()
            .filter(|k| k.starts_with("certificate:"))
        {
            let mx = &kind["certificate:".len()..];
            let tlsa: Vec<&str> = self
                .current(&format!("tlsa:{mx}"), now)
                .iter()
                .filter_map(|s| match &s.what {
                    What::Tlsa { record, .. } => Some(record.as_str()),
                    _ => None,
                })
                .collect();
            if tlsa.is_empty() {
                continue;
            }
            for cur in self.current(kind, now) {
                let What::Certificate {
                    spki_sha256: new,
                    tlsa: matched,
                    ..
                } = &cur.what
                else {
                    continue;
                };
                if !matched.is_empty() {
                    continue;
                }
                let old = self
                    .seen
                    .iter()
                    .filter(|s| s.what.kind() == *kind)
                    .find(|s| {
                        matches!(&s.what, What::Certificate { spki_sha256, tlsa: m, .. }
                        if spki_sha256 != new && m.iter().any(|r| tlsa.contains(&r.as_str())))
                    });
                if let Some(Seen {
                    what:
                        What::Certificate {
                            spki_sha256: old_key,
                            tlsa: names,
                            ..
                        },
                    ..
                }) = old
                {
                    out.push(Found {
                        code: "tlsa-names-old-certificate",
                        severity: Severity::Error,
                        host: Some(mx.to_owned()),
                        message: format!(
                            "the certificate of {mx} changed (key sha256 {}… → {}…, first seen {}), but _25._tcp.{mx} TLSA still matches only the old one ({}): DANE senders refuse it (validation-failure); publish \"3 1 1 {new}\" beside the old record, and next time publish the new key's record before the roll (RFC 7671 §8.1)",
                            crate::render::safe::cut(old_key, 16),
                            crate::render::safe::cut(new, 16),
                            at(cur.first),
                            names.join(", ")
                        ),
                    });
                }
            }
        }
        out
    }

    /// Since when `host` is in the MX set, when it joined after watching began.
    pub fn mx_joined(&self, host: &str, now: i64) -> Option<i64> {
        let since = self.watched_since("mx")?;
        self.current("mx", now)
            .into_iter()
            .find(|s| matches!(&s.what, What::Mx { host: h } if h == host))
            .map(|s| s.first)
            .filter(|&f| f > since)
    }

    /// The changes, oldest first: a value that appeared after watching began, and one
    /// that is gone (its last run before the current one).
    pub fn changes(&self) -> Vec<Change> {
        let mut out = Vec::new();
        for s in &self.seen {
            let kind = s.what.kind();
            if self.watched_since(&kind).is_some_and(|w| s.first > w) {
                out.push(Change {
                    at: s.first,
                    change: "new",
                    what: s.what.describe(),
                });
            }
            if self.observed.get(&kind).is_some_and(|&o| s.last < o) {
                out.push(Change {
                    at: s.last,
                    change: "last seen",
                    what: s.what.describe(),
                });
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.what.cmp(&b.what)));
        out
    }
}

/// One change, for `watch --history` and the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    /// `new` (first seen at) or `last seen` (gone after).
    pub change: &'static str,
    pub what: String,
}

fn ser_time<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::window::rfc3339(*t))
}

/// What differs between two parsed policies (empty: only the text).
fn policy_diff(old: &What, new: &What) -> String {
    let (
        What::StsPolicy {
            mode: m0,
            max_age: a0,
            mx: x0,
            ..
        },
        What::StsPolicy {
            mode: m1,
            max_age: a1,
            mx: x1,
            ..
        },
    ) = (old, new)
    else {
        return String::new();
    };
    let mut d = Vec::new();
    if m0 != m1 {
        d.push(format!("mode {m0} → {m1}"));
    }
    if a0 != a1 {
        d.push(format!("max_age {a0} → {a1}"));
    }
    let added: Vec<&String> = x1.iter().filter(|m| !x0.contains(m)).collect();
    let removed: Vec<&String> = x0.iter().filter(|m| !x1.contains(m)).collect();
    if !added.is_empty() {
        d.push(format!(
            "mx added: {}",
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if !removed.is_empty() {
        d.push(format!(
            "mx removed: {}",
            removed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    d.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: &str, max_age: u64, mx: &[&str]) -> What {
        What::StsPolicy {
            mode: mode.into(),
            max_age,
            mx: mx.iter().map(|s| s.to_string()).collect(),
            text: format!("version: STSv1 / mode: {mode}"),
        }
    }
    fn id(s: &str) -> What {
        What::StsId { id: s.into() }
    }
    fn run(h: &mut History, now: i64, record: Option<What>, p: Option<What>) {
        let mut o = Vec::new();
        if let Some(r) = record {
            o.push(("sts-record".to_string(), vec![r]));
        }
        if let Some(p) = p {
            o.push(("sts-policy".to_string(), vec![p]));
        }
        h.update(o, now, 400 * 86400);
    }
    fn codes(h: &History, now: i64) -> Vec<&'static str> {
        h.findings("example.org", now)
            .iter()
            .map(|f| f.code)
            .collect()
    }

    #[test]
    fn a_policy_changed_without_a_new_id_is_an_error_until_the_id_changes() {
        let mut h = History::default();
        let p1 = policy("enforce", 86400, &["mx1.example.org"]);
        let p2 = policy("enforce", 86400, &["mx1.example.org", "mx2.example.org"]);
        run(&mut h, 1000, Some(id("1")), Some(p1.clone()));
        run(&mut h, 2000, Some(id("1")), Some(p1.clone()));
        assert!(codes(&h, 2000).is_empty(), "nothing changed");
        run(&mut h, 3000, Some(id("1")), Some(p2.clone()));
        let f = h.findings("example.org", 3000);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, "sts-policy-changed-without-id");
        assert!(
            f[0].message.contains("mx added: mx2.example.org"),
            "{}",
            f[0].message
        );
        // A failed lookup of the record observes nothing: the finding stays.
        run(&mut h, 4000, None, Some(p2.clone()));
        assert!(
            codes(&h, 4000).is_empty(),
            "record not observed: not judged"
        );
        run(&mut h, 5000, Some(id("1")), Some(p2.clone()));
        assert_eq!(codes(&h, 5000), ["sts-policy-changed-without-id"]);
        // The id changes: senders fetch again.
        run(&mut h, 6000, Some(id("2")), Some(p2.clone()));
        assert!(codes(&h, 6000).is_empty());
        // Only the text changed (a comment-like reordering): no finding.
        let mut h = History::default();
        run(&mut h, 1000, Some(id("1")), Some(p1.clone()));
        let mut p1b = p1.clone();
        if let What::StsPolicy { text, .. } = &mut p1b {
            text.push_str(" / ");
        }
        run(&mut h, 2000, Some(id("1")), Some(p1b));
        assert!(codes(&h, 2000).is_empty());
    }

    #[test]
    fn the_finding_ends_when_the_old_max_age_has_passed() {
        let mut h = History::default();
        run(
            &mut h,
            0,
            Some(id("1")),
            Some(policy("enforce", 100, &["a"])),
        );
        run(
            &mut h,
            50,
            Some(id("1")),
            Some(policy("enforce", 100, &["b"])),
        );
        assert_eq!(codes(&h, 50), ["sts-policy-changed-without-id"]);
        run(
            &mut h,
            149,
            Some(id("1")),
            Some(policy("enforce", 100, &["b"])),
        );
        assert_eq!(codes(&h, 149), ["sts-policy-changed-without-id"]);
        run(
            &mut h,
            150,
            Some(id("1")),
            Some(policy("enforce", 100, &["b"])),
        );
        assert!(codes(&h, 150).is_empty());
    }

    #[test]
    fn mode_lowered_and_policy_gone() {
        let mut h = History::default();
        run(
            &mut h,
            0,
            Some(id("1")),
            Some(policy("enforce", 1000, &["a"])),
        );
        run(
            &mut h,
            10,
            Some(id("2")),
            Some(policy("testing", 1000, &["a"])),
        );
        assert_eq!(codes(&h, 10), ["sts-mode-lowered"]);
        run(&mut h, 20, Some(What::StsNoRecord), None);
        assert_eq!(codes(&h, 20), ["sts-policy-gone"]);
        run(&mut h, 2000, Some(What::StsNoRecord), None);
        assert!(codes(&h, 2000).is_empty(), "the cached policy has expired");
    }

    #[test]
    fn a_certificate_rolled_under_dane_and_a_value_back_after_an_absence() {
        let cert = |k: &str, tlsa: &[&str]| What::Certificate {
            mx: "mx.example.org".into(),
            spki_sha256: k.into(),
            not_after: 9_000_000,
            tlsa: tlsa.iter().map(|s| s.to_string()).collect(),
        };
        let tlsa = What::Tlsa {
            mx: "mx.example.org".into(),
            record: "3 1 1 aaaa".into(),
        };
        let obs = |c: What| {
            vec![
                ("tlsa:mx.example.org".to_string(), vec![tlsa.clone()]),
                ("certificate:mx.example.org".to_string(), vec![c]),
            ]
        };
        let mut h = History::default();
        h.update(obs(cert("aaaa", &["3 1 1 aaaa"])), 100, 1000);
        assert!(h.findings("example.org", 100).is_empty());
        h.update(obs(cert("bbbb", &[])), 200, 1000);
        let f = h.findings("example.org", 200);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, "tlsa-names-old-certificate");
        assert_eq!(f[0].host.as_deref(), Some("mx.example.org"));
        // Without TLSA records, a new certificate is no finding.
        let mut h2 = History::default();
        h2.update(obs(cert("aaaa", &["3 1 1 aaaa"])), 100, 1000);
        h2.update(
            vec![
                ("tlsa:mx.example.org".to_string(), vec![]),
                (
                    "certificate:mx.example.org".to_string(),
                    vec![cert("bbbb", &[])],
                ),
            ],
            200,
            1000,
        );
        assert!(h2.findings("example.org", 200).is_empty());
        // The old key back: a new stretch, so "since" is when it came back.
        h.update(obs(cert("aaaa", &["3 1 1 aaaa"])), 300, 1000);
        assert!(h.findings("example.org", 300).is_empty());
        let back = h
            .seen
            .iter()
            .filter(|s| matches!(&s.what, What::Certificate { spki_sha256, .. } if spki_sha256 == "aaaa"))
            .count();
        assert_eq!(back, 2);
        let ch = h.changes();
        assert!(
            ch.iter().any(|c| c.at == 200 && c.change == "new"),
            "{ch:?}"
        );
        assert!(
            ch.iter().any(|c| c.at == 200 && c.change == "last seen"),
            "{ch:?}"
        );
        // Retention: stretches that ended long ago are forgotten.
        h.update(obs(cert("aaaa", &["3 1 1 aaaa"])), 5000, 1000);
        assert!(h.seen.iter().all(|s| s.last >= 4000), "{:?}", h.seen);
    }

    #[test]
    fn entries_are_bounded_and_unknown_kinds_are_dropped() {
        let mut h = History::default();
        for t in 0..(MAX_ENTRIES as i64 + 50) {
            h.update(
                vec![(
                    "mx".into(),
                    vec![What::Mx {
                        host: format!("mx{t}"),
                    }],
                )],
                t,
                i64::MAX,
            );
        }
        assert_eq!(h.seen.len(), MAX_ENTRIES);
        assert!(h.seen.iter().any(|s| s.last == MAX_ENTRIES as i64 + 49));
        let json = r#"{"seen":[{"kind":"from-the-future","first":1,"last":2},{"kind":"mx","host":"a","first":1,"last":2}]}"#;
        let mut h: History = serde_json::from_str(json).unwrap();
        h.update(Vec::new(), 3, 1000);
        assert_eq!(h.seen.len(), 1);
    }
}
