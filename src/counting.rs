//! The counting rule: which policies of one report stand for a policy domain's
//! sessions. Defined once, here, and used by every figure: `tlsrpt-pipe`'s alerts, and
//! on the operator's side the summary (every format), `check`, `metrics` and the
//! database's figure rows. Pure; no I/O.
//!
//! RFC 8460 §4.4 reports sessions per policy, and senders use that freedom in two ways:
//! - **Policies of the same type are different sessions**, so they add up. A DANE sender
//!   writes one `tlsa` policy per MX host when the hosts have different keys (each with
//!   its `mx-host`), and SocketLabs splits one domain's `sts` sessions over two
//!   policies (12 successful in one, 2 `certificate-host-mismatch` in the other): the
//!   domain had 14 sessions, 2 of them failed.
//! - **Policies of different types are the same sessions judged twice**: Microsoft
//!   reports each session to a domain under `sts` and under `tlsa` when it checked both.
//!   Adding them would count every session twice, so one type counts: the one with the
//!   most sessions (summed over its policies), ties broken by the most failures, then by
//!   the type that came first.
//!
//! The failure details and result types of a domain are those of the counted type's
//! policies; each type's own figures are still shown per type.

/// A policy domain as figures are keyed: trimmed, lower case, without a trailing dot;
/// `(none)` when the report names none (a policy without `policy-domain` is still
/// counted, under that name).
pub fn domain_key(d: Option<&str>) -> String {
    match d.map(|d| d.trim().trim_end_matches('.')) {
        Some(d) if !d.is_empty() => d.to_ascii_lowercase(),
        _ => NONE.to_owned(),
    }
}

/// The key of a missing domain or policy type.
pub const NONE: &str = "(none)";

/// What the rule needs to know of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyCount<'a> {
    /// The `policy-type` as sent (`(none)` when absent).
    pub policy_type: &'a str,
    pub successful: u64,
    pub failed: u64,
}

/// The counted type of one report and domain, and its sessions (summed over the
/// type's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted<'a> {
    pub policy_type: &'a str,
    pub successful: u64,
    pub failed: u64,
}

impl Counted<'_> {
    pub fn total(&self) -> u64 {
        self.successful.saturating_add(self.failed)
    }
}

/// Every type of one report's policies for one domain with its summed sessions, in the
/// order the types first appear; the counted one is [`counted`]'s.
pub fn by_type<'a>(policies: impl IntoIterator<Item = PolicyCount<'a>>) -> Vec<Counted<'a>> {
    let mut types: Vec<Counted<'a>> = Vec::new();
    for p in policies {
        match types.iter_mut().find(|t| t.policy_type == p.policy_type) {
            Some(t) => {
                t.successful = t.successful.saturating_add(p.successful);
                t.failed = t.failed.saturating_add(p.failed);
            }
            None => types.push(Counted {
                policy_type: p.policy_type,
                successful: p.successful,
                failed: p.failed,
            }),
        }
    }
    types
}

/// The type whose sessions count for the domain (see the module rules); `None` only
/// for no policy at all.
pub fn counted<'a>(policies: impl IntoIterator<Item = PolicyCount<'a>>) -> Option<Counted<'a>> {
    let mut best: Option<Counted<'a>> = None;
    for t in by_type(policies) {
        // Strictly more: on a tie the type met first stays.
        if best.is_none_or(|b| (t.total(), t.failed) > (b.total(), b.failed)) {
            best = Some(t);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, s: u64, f: u64) -> PolicyCount<'_> {
        PolicyCount {
            policy_type: t,
            successful: s,
            failed: f,
        }
    }

    #[test]
    fn the_same_type_adds_up() {
        // SocketLabs: two sts policies of one domain.
        let c = counted([p("sts", 12, 0), p("sts", 0, 2)]).unwrap();
        assert_eq!((c.policy_type, c.successful, c.failed), ("sts", 12, 2));
        // One tlsa policy per MX host, one of them failing.
        let c = counted([p("tlsa", 100, 0), p("tlsa", 40, 5), p("tlsa", 7, 0)]).unwrap();
        assert_eq!((c.successful, c.failed), (147, 5));
    }

    #[test]
    fn different_types_count_once() {
        // Microsoft: sts and tlsa over the same sessions.
        let c = counted([p("sts", 10, 2), p("tlsa", 10, 2)]).unwrap();
        assert_eq!((c.policy_type, c.total()), ("sts", 12));
        // The type with more sessions, then more failures.
        assert_eq!(
            counted([p("sts", 10, 0), p("tlsa", 9, 2)])
                .unwrap()
                .policy_type,
            "tlsa"
        );
        assert_eq!(
            counted([p("sts", 11, 0), p("tlsa", 9, 2)])
                .unwrap()
                .policy_type,
            "tlsa"
        );
        assert_eq!(
            counted([p("sts", 12, 0), p("tlsa", 9, 2)])
                .unwrap()
                .policy_type,
            "sts"
        );
        // Mixed: two tlsa (per MX) summed against one sts over the same sessions.
        let c = counted([p("sts", 20, 1), p("tlsa", 10, 0), p("tlsa", 10, 1)]).unwrap();
        assert_eq!((c.policy_type, c.successful, c.failed), ("sts", 20, 1));
        assert_eq!(counted(Vec::<PolicyCount>::new()), None);
    }

    #[test]
    fn domain_keys() {
        assert_eq!(domain_key(Some(" Example.COM. ")), "example.com");
        assert_eq!(domain_key(Some(".")), NONE);
        assert_eq!(domain_key(None), NONE);
    }
}
