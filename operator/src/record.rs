//! One spool line → a read-only view of the record (schema/record.schema.json).
//!
//! Guarantee: parsing never panics and never trusts a line. The view borrows from the
//! line; every field the delivery may have kept "as found" (a count sent as text, an
//! array sent as a string, an object where a string belongs) is read leniently: a
//! number that is not a non-negative integer counts as 0, a string field of another type
//! as absent. A line that is not a record at all, or a record of a newer schema version,
//! is an [`Unusable`] value, reported by the caller as a skipped line.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The newest record schema version this program reads.
pub const SUPPORTED_VERSION: u64 = 3;

type Str<'a> = Option<Cow<'a, str>>;

#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    pub version: u64,
    #[serde(
        rename = "received-at",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub received_at: Str<'a>,
    #[serde(
        rename = "dedup-key",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub dedup_key: Str<'a>,
    #[serde(borrow, default)]
    pub authentication: Authentication<'a>,
    #[serde(borrow, default)]
    pub envelope: Envelope<'a>,
    #[serde(borrow, default)]
    pub headers: Headers<'a>,
    #[serde(borrow, default)]
    pub source: Source<'a>,
    /// Kept as written (only `load` stores it).
    #[serde(borrow, default)]
    pub warnings: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    pub report: Report<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Authentication<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub verdict: Str<'a>,
    /// Every A-R header's DKIM results (record version 3), kept as written and parsed
    /// only when a report is judged again ([`Record::ar_headers`]).
    #[serde(borrow, default)]
    pub headers: Option<&'a serde_json::value::RawValue>,
}

/// The envelope the MTA passed: the address a report was delivered to (what makes a
/// policy domain ours: crate::ours).
#[derive(Debug, Default, Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub recipient: Str<'a>,
    #[serde(
        rename = "original-recipient",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub original_recipient: Str<'a>,
}

/// The message headers DKIM alignment is judged against.
#[derive(Debug, Default, Deserialize)]
pub struct Headers<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub from: Str<'a>,
    #[serde(
        rename = "tls-report-submitter",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub tls_report_submitter: Str<'a>,
}

/// How the report arrived.
#[derive(Debug, Default, Deserialize)]
pub struct Source<'a> {
    /// `mail` or `https` (version 2; absent before: mail).
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub transport: Str<'a>,
}

/// RFC 8460 §4.4, the fields an operator's view needs.
#[derive(Debug, Deserialize)]
pub struct Report<'a> {
    #[serde(
        rename = "organization-name",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub organization_name: Str<'a>,
    #[serde(rename = "date-range", borrow)]
    pub date_range: DateRange<'a>,
    #[serde(
        rename = "contact-info",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub contact_info: Str<'a>,
    #[serde(
        rename = "report-id",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub report_id: Str<'a>,
    #[serde(borrow, default, deserialize_with = "lenient_seq")]
    pub policies: Vec<PolicyResult<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct DateRange<'a> {
    #[serde(rename = "start-datetime", borrow, deserialize_with = "lenient_str")]
    pub start: Str<'a>,
    #[serde(rename = "end-datetime", borrow, deserialize_with = "lenient_str")]
    pub end: Str<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyResult<'a> {
    #[serde(borrow, default)]
    pub policy: Policy<'a>,
    #[serde(default)]
    pub summary: Summary,
    #[serde(
        rename = "failure-details",
        borrow,
        default,
        deserialize_with = "lenient_seq"
    )]
    pub failure_details: Vec<FailureDetail<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Policy<'a> {
    #[serde(
        rename = "policy-type",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub policy_type: Str<'a>,
    #[serde(
        rename = "policy-string",
        borrow,
        default,
        deserialize_with = "lenient_strings"
    )]
    pub policy_string: Vec<Cow<'a, str>>,
    #[serde(
        rename = "policy-domain",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub policy_domain: Str<'a>,
    #[serde(
        rename = "mx-host",
        borrow,
        default,
        deserialize_with = "lenient_strings"
    )]
    pub mx_host: Vec<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Summary {
    #[serde(
        rename = "total-successful-session-count",
        default,
        deserialize_with = "lenient_u64"
    )]
    pub successful: u64,
    #[serde(
        rename = "total-failure-session-count",
        default,
        deserialize_with = "lenient_u64"
    )]
    pub failed: u64,
}

/// RFC 8460 §4.4 failure-details.
#[derive(Debug, Default, Deserialize)]
pub struct FailureDetail<'a> {
    #[serde(
        rename = "result-type",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub result_type: Str<'a>,
    #[serde(
        rename = "sending-mta-ip",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub sending_mta_ip: Str<'a>,
    #[serde(
        rename = "receiving-mx-hostname",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub receiving_mx_hostname: Str<'a>,
    #[serde(
        rename = "receiving-mx-helo",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub receiving_mx_helo: Str<'a>,
    #[serde(
        rename = "receiving-ip",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub receiving_ip: Str<'a>,
    #[serde(
        rename = "failed-session-count",
        default,
        deserialize_with = "lenient_u64"
    )]
    pub failed_session_count: u64,
    #[serde(
        rename = "additional-information",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub additional_information: Str<'a>,
    #[serde(
        rename = "failure-reason-code",
        borrow,
        default,
        deserialize_with = "lenient_str"
    )]
    pub failure_reason_code: Str<'a>,
}

/// Why a line is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// No final newline: a line being written, or cut by a crash.
    Torn,
    /// Not JSON, or JSON that is not a record.
    NotARecord(String),
    /// A record of a schema version this program does not know.
    NewerVersion(u64),
    /// A record whose date range is not RFC 3339.
    BadDateRange,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Torn => write!(f, "torn line (no final newline)"),
            Unusable::NotARecord(e) => write!(f, "not a record: {e}"),
            Unusable::NewerVersion(v) => write!(
                f,
                "record schema version {v} is newer than {SUPPORTED_VERSION}: upgrade tlsrpt"
            ),
            Unusable::BadDateRange => write!(f, "date-range is not RFC 3339"),
        }
    }
}

impl Record<'_> {
    /// `true` when a trusted, aligned DKIM signature passed at delivery (RFC 8460 §3).
    /// Whether a report counts is [`crate::trust::Trust::judge`]'s: it may also trust
    /// authserv-ids the delivery did not.
    pub fn authenticated(&self) -> bool {
        self.authentication.verdict.as_deref() == Some("pass")
    }

    /// The A-R headers' DKIM results the delivery kept (empty before record version
    /// 3, for HTTPS reports, and when the field is not what the delivery writes).
    pub fn ar_headers(&self) -> Vec<tlsrpt_pipe::auth::ArHeader> {
        self.authentication
            .headers
            .and_then(|raw| {
                serde_json::from_str::<Vec<tlsrpt_pipe::auth::ArHeader>>(raw.get()).ok()
            })
            .map(|mut v| {
                // As the delivery bounds them (a spool line is untrusted input too).
                v.truncate(tlsrpt_pipe::auth::MAX_KEPT_HEADERS);
                for h in &mut v {
                    h.dkim.truncate(tlsrpt_pipe::auth::MAX_KEPT_RESULTS);
                }
                v
            })
            .unwrap_or_default()
    }

    /// The report came by HTTPS (no DKIM possible).
    pub fn https(&self) -> bool {
        self.source.transport.as_deref() == Some("https")
    }
}

/// A parsed record with its date range as Unix seconds.
pub struct Parsed<'a> {
    pub record: Record<'a>,
    pub start: i64,
    pub end: i64,
}

/// Parses one line (without its newline).
pub fn parse(line: &str) -> Result<Parsed<'_>, Unusable> {
    let record: Record = serde_json::from_str(line).map_err(|e| {
        let e = e.to_string();
        let m = crate::render::safe::cut(&e, 120).to_owned();
        Unusable::NotARecord(m)
    })?;
    if record.version > SUPPORTED_VERSION || record.version == 0 {
        return Err(Unusable::NewerVersion(record.version));
    }
    let ts = |s: &Str| {
        s.as_deref()
            .and_then(tlsrpt_pipe::datetime::parse)
            .map(|(t, _)| t.0)
    };
    let (Some(start), Some(end)) = (
        ts(&record.report.date_range.start),
        ts(&record.report.date_range.end),
    ) else {
        return Err(Unusable::BadDateRange);
    };
    Ok(Parsed { record, start, end })
}

// ---- lenient readers ----------------------------------------------------------------

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a count")
        }
        fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<u64, E> {
            Ok(v.max(0) as u64)
        }
        fn visit_f64<E>(self, v: f64) -> Result<u64, E> {
            Ok(
                if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1e19 {
                    v as u64
                } else {
                    0
                },
            )
        }
        fn visit_str<E>(self, v: &str) -> Result<u64, E> {
            Ok(v.trim().parse().unwrap_or(0))
        }
        fn visit_bool<E>(self, _: bool) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_unit<E>(self) -> Result<u64, E> {
            Ok(0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<u64, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<u64, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

struct StrV;
impl<'de> Visitor<'de> for StrV {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_any(StrV)
}

/// One string element of a lenient array.
struct LStr<'a>(Option<Cow<'a, str>>);
impl<'de> Deserialize<'de> for LStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrV).map(LStr)
    }
}

/// An array of strings; a lone string is a one-element array; anything else is empty.
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut v = Vec::new();
            while let Some(LStr(s)) = a.next_element()? {
                v.extend(s);
            }
            Ok(v)
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(vec![Cow::Borrowed(v)])
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![Cow::Owned(v.to_owned())])
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V)
}

/// An array of objects; elements that are not objects are dropped; a non-array is empty.
fn lenient_seq<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    /// An element: the object, or nothing for any other JSON value.
    struct Elem<T>(Option<T>);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Elem<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct EV<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for EV<T> {
                type Value = Elem<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Elem<T>, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(a)).map(|t| Elem(Some(t)))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Elem<T>, A::Error> {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Elem(None))
                }
                fn visit_str<E>(self, _: &str) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
                fn visit_u64<E>(self, _: u64) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
                fn visit_i64<E>(self, _: i64) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
                fn visit_f64<E>(self, _: f64) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
                fn visit_unit<E>(self) -> Result<Elem<T>, E> {
                    Ok(Elem(None))
                }
            }
            d.deserialize_any(EV(std::marker::PhantomData))
        }
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::new();
            while let Some(Elem(e)) = a.next_element::<Elem<T>>()? {
                v.extend(e);
            }
            Ok(v)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Vec<T>, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }
        fn visit_str<E>(self, _: &str) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_u64<E>(self, _: u64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_are_read_leniently() {
        let line = r#"{"version":1,"dedup-key":"k","report":{"organization-name":{"x":1},
            "date-range":{"start-datetime":"2024-05-01T00:00:00Z","end-datetime":"2024-05-01T23:59:59Z"},
            "policies":[7,{"policy":{"policy-type":"sts","policy-domain":"example.com","mx-host":"mx.example.com"},
            "summary":{"total-successful-session-count":"12","total-failure-session-count":-3},
            "failure-details":[{"result-type":"certificate-expired","failed-session-count":2.0,"receiving-ip":["x"]}]}]}}"#;
        let p = parse(line).unwrap();
        let r = &p.record.report;
        assert_eq!(r.organization_name, None);
        assert_eq!(r.policies.len(), 1);
        let pol = &r.policies[0];
        assert_eq!(pol.policy.mx_host, vec!["mx.example.com"]);
        assert_eq!((pol.summary.successful, pol.summary.failed), (12, 0));
        assert_eq!(pol.failure_details[0].failed_session_count, 2);
        assert_eq!(pol.failure_details[0].receiving_ip, None);
        assert!(!p.record.authenticated());
    }

    #[test]
    fn unusable_lines_are_values() {
        assert!(matches!(parse("{"), Err(Unusable::NotARecord(_))));
        assert!(matches!(parse("[]"), Err(Unusable::NotARecord(_))));
        let newer = r#"{"version":9,"report":{"date-range":{"start-datetime":"2024-05-01T00:00:00Z","end-datetime":"2024-05-02T00:00:00Z"}}}"#;
        assert_eq!(parse(newer).err(), Some(Unusable::NewerVersion(9)));
        let bad = r#"{"version":1,"report":{"date-range":{"start-datetime":"yesterday","end-datetime":"2024-05-02T00:00:00Z"}}}"#;
        assert_eq!(parse(bad).err(), Some(Unusable::BadDateRange));
    }
}
