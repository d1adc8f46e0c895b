//! The RFC 8460 report document: types shaped like §4 and the normaliser.
//!
//! Guarantee: `parse` does no I/O and never panics on any input. A document that parses
//! keeps every field it carried: unknown keys and values of an unexpected type land in
//! the `extra` map of the object they were found in (under their original key) and are
//! written back out verbatim; unknown `policy-type` and `result-type` values are kept as
//! `Other(String)`. Every change made on the way (a string `mx-host` turned into an
//! array, a zone added to a date-time, a legacy key renamed) is recorded as a
//! [`Warning`] with the JSON path it applies to. Only a document that cannot be placed
//! in time or read as a list of policy results is rejected.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::datetime::{self, Zone};

/// One deviation from RFC 8460 that was tolerated, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable, grep-able identifier (`mx-host-string`, `datetime-no-zone`, ...).
    pub code: &'static str,
    /// Where: a JSON path into the report, or a MIME location for transport warnings.
    pub path: String,
    /// Human-readable detail; never contains raw report text longer than a value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Warning {
    pub fn new(code: &'static str, path: impl Into<String>, detail: impl Into<String>) -> Self {
        Warning {
            code,
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// A deviation noticed while deserializing, before the JSON path is known.
#[derive(Debug, Clone, Default, PartialEq)]
struct Note {
    code: &'static str,
    field: &'static str,
    detail: String,
}

type Notes = Vec<Note>;

/// `policy-type` (§4.3): the registry is open, unknown values are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyType {
    Sts,
    Tlsa,
    NoPolicyFound,
    Other(String),
}

/// `result-type` (§4.3, IANA registry §6.6): unknown values are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
    Other(String),
}

macro_rules! string_enum {
    ($ty:ident { $($variant:ident = $s:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                match self { $($ty::$variant => $s,)* $ty::Other(s) => s }
            }
            pub fn is_known(&self) -> bool { !matches!(self, $ty::Other(_)) }
        }
        impl From<String> for $ty {
            fn from(s: String) -> Self {
                match s.as_str() { $($s => $ty::$variant,)* _ => $ty::Other(s) }
            }
        }
        impl From<std::borrow::Cow<'_, str>> for $ty {
            /// Known values cost no allocation.
            fn from(s: std::borrow::Cow<'_, str>) -> Self {
                match s.as_ref() { $($s => $ty::$variant,)* _ => $ty::Other(s.into_owned()) }
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(PolicyType { Sts = "sts", Tlsa = "tlsa", NoPolicyFound = "no-policy-found" });
string_enum!(ResultType {
    StarttlsNotSupported = "starttls-not-supported",
    CertificateHostMismatch = "certificate-host-mismatch",
    CertificateExpired = "certificate-expired",
    CertificateNotTrusted = "certificate-not-trusted",
    ValidationFailure = "validation-failure",
    TlsaInvalid = "tlsa-invalid",
    DnssecInvalid = "dnssec-invalid",
    DaneRequired = "dane-required",
    StsPolicyFetchError = "sts-policy-fetch-error",
    StsPolicyInvalid = "sts-policy-invalid",
    StsWebpkiInvalid = "sts-webpki-invalid",
});

/// §4.4 top level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    #[serde(rename = "organization-name", skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    #[serde(rename = "date-range", skip_serializing_if = "Option::is_none")]
    pub date_range: Option<DateRange>,
    #[serde(rename = "contact-info", skip_serializing_if = "Option::is_none")]
    pub contact_info: Option<String>,
    #[serde(rename = "report-id", skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyResult>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

/// §4.4 `date-range`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DateRange {
    #[serde(rename = "start-datetime", skip_serializing_if = "Option::is_none")]
    pub start_datetime: Option<String>,
    #[serde(rename = "end-datetime", skip_serializing_if = "Option::is_none")]
    pub end_datetime: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

/// One element of `policies`: §4.4's policy, summary and failure details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(rename = "failure-details", skip_serializing_if = "Option::is_none")]
    pub failure_details: Option<Vec<FailureDetail>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

/// §4.4 `policy`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Policy {
    #[serde(rename = "policy-type", skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<PolicyType>,
    #[serde(rename = "policy-string", skip_serializing_if = "Option::is_none")]
    pub policy_string: Option<Vec<String>>,
    #[serde(rename = "policy-domain", skip_serializing_if = "Option::is_none")]
    pub policy_domain: Option<String>,
    /// Erratum 6241: an array. The RFC's own example (and some senders) use a string.
    #[serde(rename = "mx-host", skip_serializing_if = "Option::is_none")]
    pub mx_host: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

/// §4.4 `summary`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(
        rename = "total-successful-session-count",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_successful_session_count: Option<u64>,
    #[serde(
        rename = "total-failure-session-count",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_failure_session_count: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

/// §4.4 `failure-details` element.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailureDetail {
    #[serde(rename = "result-type", skip_serializing_if = "Option::is_none")]
    pub result_type: Option<ResultType>,
    #[serde(rename = "sending-mta-ip", skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<String>,
    #[serde(
        rename = "receiving-mx-hostname",
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_mx_hostname: Option<String>,
    #[serde(rename = "receiving-mx-helo", skip_serializing_if = "Option::is_none")]
    pub receiving_mx_helo: Option<String>,
    #[serde(rename = "receiving-ip", skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<String>,
    #[serde(
        rename = "failed-session-count",
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_session_count: Option<u64>,
    #[serde(
        rename = "additional-information",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_information: Option<String>,
    #[serde(
        rename = "failure-reason-code",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason_code: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    notes: Notes,
}

// ---------------------------------------------------------------------------
// Tolerant deserialization. Each object is read key by key; a known key whose value has
// the wrong JSON type is kept in `extra` under its own name, never dropped, and never
// fails the parse. Hand-written visitors instead of `#[serde(flatten)]`: flatten buffers
// every object (and so every failure-detail row) a second time.
// ---------------------------------------------------------------------------

fn note(notes: &mut Notes, code: &'static str, field: &'static str, detail: impl Into<String>) {
    notes.push(Note {
        code,
        field,
        detail: detail.into(),
    });
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn keep_raw(extra: &mut Map<String, Value>, notes: &mut Notes, key: &'static str, v: Value) {
    note(
        notes,
        "unexpected-type",
        key,
        format!("{} kept as found", value_kind(&v)),
    );
    extra.insert(key.to_owned(), v);
}

fn take_string(
    key: &'static str,
    v: Value,
    extra: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        other => {
            keep_raw(extra, notes, key, other);
            None
        }
    }
}

fn take_count(
    key: &'static str,
    v: Value,
    extra: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Option<u64> {
    match v {
        Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
        Value::String(s)
            if !s.is_empty() && s.len() < 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            note(notes, "count-as-string", key, "");
            s.parse().ok()
        }
        other => {
            keep_raw(extra, notes, key, other);
            None
        }
    }
}

fn take_strings(
    key: &'static str,
    v: Value,
    extra: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Option<Vec<String>> {
    match v {
        Value::String(s) => {
            note(
                notes,
                "string-as-array",
                key,
                "a string; stored as a one-element array",
            );
            Some(vec![s])
        }
        Value::Array(items) if items.iter().all(Value::is_string) => Some(
            items
                .into_iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        other => {
            keep_raw(extra, notes, key, other);
            None
        }
    }
}

/// An object or array field: the typed value, or the raw JSON when it had another shape.
enum Shaped<T> {
    Typed(T),
    Raw(Value),
}

struct ShapedVisitor<T>(PhantomData<T>);

macro_rules! raw_scalars {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::Bool(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::from(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::from(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::from(v)))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::from(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::Null))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Shaped::Raw(Value::Null))
        }
    };
}

/// An object-valued field (`date-range`, `policy`, `summary`).
struct Obj<T>(Shaped<T>);
/// An array-valued field (`policies`, `failure-details`).
struct Arr<T>(Shaped<Vec<T>>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapedVisitor<Obj<T>> {
    type Value = Shaped<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Shaped::Typed)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Shaped::Raw)
    }
    raw_scalars!();
}

/// How many elements an array of `Self` will probably have.
trait CapacityHint {
    fn capacity_hint() -> usize {
        0
    }
}

impl CapacityHint for PolicyResult {}

thread_local! {
    /// Failure-detail rows in the document `parse` is reading, counted up front: a
    /// vector of 60,000 rows that grows by doubling copies itself four times and
    /// briefly holds two copies. Set and cleared by `parse`; taken by the first
    /// `failure-details` array (a report with several gets one right-sized array).
    static FAILURE_ROWS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl CapacityHint for FailureDetail {
    fn capacity_hint() -> usize {
        FAILURE_ROWS.with(|c| c.replace(0))
    }
}

impl<'de, T: Deserialize<'de> + CapacityHint> Visitor<'de> for ShapedVisitor<Arr<T>> {
    type Value = Shaped<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(T::capacity_hint());
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Shaped::Typed(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Shaped::Raw)
    }
    raw_scalars!();
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapedVisitor::<Obj<T>>(PhantomData))
            .map(Obj)
    }
}

impl<'de, T: Deserialize<'de> + CapacityHint> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapedVisitor::<Arr<T>>(PhantomData))
            .map(Arr)
    }
}

fn take_shaped<T>(
    key: &'static str,
    s: Shaped<T>,
    extra: &mut Map<String, Value>,
    notes: &mut Notes,
) -> Option<T> {
    match s {
        Shaped::Typed(t) => Some(t),
        Shaped::Raw(v) => {
            keep_raw(extra, notes, key, v);
            None
        }
    }
}

/// A value expected to be a string (an object key, a `result-type`): borrowed from the
/// input when it has no escapes, so that matching it against known names allocates
/// nothing; or, if it is not a string, the JSON value as found.
enum Scalar<'de> {
    Str(std::borrow::Cow<'de, str>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SV;
        impl<'de> Visitor<'de> for SV {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::from(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Scalar::Other)
            }
        }
        d.deserialize_any(SV)
    }
}

/// Implements `Deserialize` for one report object: `|this, key, map| { match ... }`.
/// Unknown keys go to `extra` as raw JSON.
macro_rules! object_deserialize {
    ($ty:ident, $expecting:literal, |$this:ident, $key:ident, $map:ident| { $($arms:tt)* }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$ty, A::Error> {
                        let mut $this = $ty::default();
                        while let Some(k) = $map.next_key::<Scalar<'de>>()? {
                            let $key = match k {
                                Scalar::Str(s) => s,
                                Scalar::Other(v) => std::borrow::Cow::Owned(v.to_string()),
                            };
                            // RFC 7493 §2.3 forbids duplicate keys; when a sender repeats
                            // one, the last occurrence wins, whatever its type, as in
                            // serde_json's own maps. An earlier value kept in `extra`
                            // must go, or the record would carry the key twice.
                            if $this.extra.remove($key.as_ref()).is_some() {
                                note(&mut $this.notes, "duplicate-key", "", $key.as_ref());
                            }
                            match $key.as_ref() {
                                $($arms)*
                                _ => {
                                    let v: Value = $map.next_value()?;
                                    $this.extra.insert($key.into_owned(), v);
                                }
                            }
                        }
                        Ok($this)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

macro_rules! field {
    (string $this:ident . $f:ident, $k:literal, $map:ident) => {{
        let v: Value = $map.next_value()?;
        $this.$f = take_string($k, v, &mut $this.extra, &mut $this.notes);
    }};
    (count $this:ident . $f:ident, $k:literal, $map:ident) => {{
        let v: Value = $map.next_value()?;
        $this.$f = take_count($k, v, &mut $this.extra, &mut $this.notes);
    }};
    (strings $this:ident . $f:ident, $k:literal, $map:ident) => {{
        let v: Value = $map.next_value()?;
        $this.$f = take_strings($k, v, &mut $this.extra, &mut $this.notes);
    }};
    (obj $this:ident . $f:ident, $k:literal, $map:ident) => {{
        let v: Obj<_> = $map.next_value()?;
        $this.$f = take_shaped($k, v.0, &mut $this.extra, &mut $this.notes);
    }};
    (arr $this:ident . $f:ident, $k:literal, $map:ident) => {{
        let v: Arr<_> = $map.next_value()?;
        $this.$f = take_shaped($k, v.0, &mut $this.extra, &mut $this.notes);
    }};
}

object_deserialize!(Report, "an RFC 8460 report object", |this, key, map| {
    "organization-name" => field!(string this.organization_name, "organization-name", map),
    "date-range" => field!(obj this.date_range, "date-range", map),
    "contact-info" => field!(string this.contact_info, "contact-info", map),
    "report-id" => field!(string this.report_id, "report-id", map),
    "policies" => field!(arr this.policies, "policies", map),
});

object_deserialize!(DateRange, "a date-range object", |this, key, map| {
    "start-datetime" => field!(string this.start_datetime, "start-datetime", map),
    "end-datetime" => field!(string this.end_datetime, "end-datetime", map),
});

object_deserialize!(PolicyResult, "a policy result object", |this, key, map| {
    "policy" => field!(obj this.policy, "policy", map),
    "summary" => field!(obj this.summary, "summary", map),
    "failure-details" => field!(arr this.failure_details, "failure-details", map),
});

object_deserialize!(Policy, "a policy object", |this, key, map| {
    "policy-type" => {
        let v: Value = map.next_value()?;
        this.policy_type =
            take_string("policy-type", v, &mut this.extra, &mut this.notes).map(PolicyType::from);
    }
    "policy-string" => field!(strings this.policy_string, "policy-string", map),
    "policy-domain" => field!(string this.policy_domain, "policy-domain", map),
    "mx-host" => field!(strings this.mx_host, "mx-host", map),
});

object_deserialize!(Summary, "a summary object", |this, key, map| {
    "total-successful-session-count" =>
        field!(count this.total_successful_session_count, "total-successful-session-count", map),
    "total-failure-session-count" =>
        field!(count this.total_failure_session_count, "total-failure-session-count", map),
});

object_deserialize!(FailureDetail, "a failure-details object", |this, key, map| {
    "result-type" => {
        let v: Scalar<'de> = map.next_value()?;
        this.result_type = match v {
            Scalar::Str(s) => Some(ResultType::from(s)),
            Scalar::Other(v) => {
                keep_raw(&mut this.extra, &mut this.notes, "result-type", v);
                None
            }
        };
    }
    "sending-mta-ip" => field!(string this.sending_mta_ip, "sending-mta-ip", map),
    "receiving-mx-hostname" => field!(string this.receiving_mx_hostname, "receiving-mx-hostname", map),
    "receiving-mx-helo" => field!(string this.receiving_mx_helo, "receiving-mx-helo", map),
    "receiving-ip" => field!(string this.receiving_ip, "receiving-ip", map),
    "failed-session-count" => field!(count this.failed_session_count, "failed-session-count", map),
    "additional-information" => field!(string this.additional_information, "additional-information", map),
    "failure-reason-code" => field!(string this.failure_reason_code, "failure-reason-code", map),
});

// ---------------------------------------------------------------------------
// Normalisation.
// ---------------------------------------------------------------------------

/// Why a document could not be turned into a report record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON, or not a JSON object at the top (serde_json's message, with position).
    Json(String),
    /// A field without which the report cannot be used.
    Missing(&'static str),
    /// A field present but unusable (`start-datetime: "April fools"`).
    Invalid { path: String, why: &'static str },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Json(e) => write!(f, "invalid JSON: {e}"),
            Rejection::Missing(p) => write!(f, "required field {p} is missing"),
            Rejection::Invalid { path, why } => write!(f, "{path} {why}"),
        }
    }
}

/// A report that passed `parse`, with every tolerated deviation listed.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub report: Report,
    pub warnings: Vec<Warning>,
}

/// Parses and normalises one report document (RFC 8460 §4). Pure: no I/O.
pub fn parse(json: &[u8]) -> Result<Parsed, Rejection> {
    // §4: I-JSON, UTF-8. A BOM is not JSON but some tools add one.
    let mut warnings = Vec::new();
    let body = match json.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => {
            warnings.push(Warning::new(
                "utf8-bom",
                "",
                "byte order mark before the JSON",
            ));
            rest
        }
        None => json,
    };
    // A hint only, capped so that a document stuffed with the key cannot make it
    // reserve much more than the document's own size.
    let rows = memchr::memmem::find_iter(body, b"\"result-type\"")
        .count()
        .min(body.len() / 64);
    FAILURE_ROWS.with(|c| c.set(rows));
    // I-JSON is UTF-8 (RFC 7493 §2.1). Validating the whole document once, then
    // parsing it as a str, is several times cheaper than serde_json validating every
    // string on its own.
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::Json(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let report = serde_json::from_str::<Report>(text);
    FAILURE_ROWS.with(|c| c.set(0));
    let mut report = report.map_err(|e| Rejection::Json(e.to_string()))?;
    normalise(&mut report, &mut warnings)?;
    Ok(Parsed { report, warnings })
}

fn flush_notes(notes: &mut Notes, path: &str, warnings: &mut Vec<Warning>) {
    for n in notes.drain(..) {
        let p = match (path.is_empty(), n.field.is_empty()) {
            (true, _) => n.field.to_owned(),
            (false, true) => path.to_owned(),
            (false, false) => format!("{path}.{}", n.field),
        };
        warnings.push(Warning::new(n.code, p, n.detail));
    }
}

/// Renames a key from an RFC draft or a buggy sender to its RFC name when the RFC
/// name is absent; otherwise leaves it in `extra`, untouched.
fn legacy_key(
    extra: &mut Map<String, Value>,
    slot: &mut Option<String>,
    legacy: &'static str,
    rfc: &'static str,
    path: &str,
    warnings: &mut Vec<Warning>,
) {
    if slot.is_none() && matches!(extra.get(legacy), Some(Value::String(_))) {
        if let Some(Value::String(s)) = extra.remove(legacy) {
            *slot = Some(s);
            warnings.push(Warning::new(
                "legacy-key",
                format!("{path}.{legacy}"),
                format!("renamed to {rfc}"),
            ));
        }
    } else if extra.contains_key(legacy) {
        warnings.push(Warning::new(
            "legacy-key",
            format!("{path}.{legacy}"),
            "kept: RFC key also present",
        ));
    }
}

/// §4.4: start and end must be RFC 3339 date-times. A missing zone is read as UTC.
fn normalise_datetime(
    slot: &mut Option<String>,
    path: &str,
    warnings: &mut Vec<Warning>,
) -> Result<datetime::Timestamp, Rejection> {
    let Some(s) = slot.as_mut() else {
        return Err(Rejection::Missing(if path.ends_with("start-datetime") {
            "date-range.start-datetime"
        } else {
            "date-range.end-datetime"
        }));
    };
    let trimmed = s.trim();
    let (ts, zone) = datetime::parse(trimmed).ok_or(Rejection::Invalid {
        path: path.to_owned(),
        why: "is not an RFC 3339 date-time",
    })?;
    if trimmed.len() != s.len() {
        warnings.push(Warning::new(
            "whitespace",
            path,
            "surrounding whitespace removed",
        ));
        *s = trimmed.to_owned();
    }
    if zone == Zone::Missing {
        warnings.push(Warning::new(
            "datetime-no-zone",
            path,
            format!("{s} read as UTC"),
        ));
        s.push('Z');
    }
    Ok(ts)
}

fn normalise(r: &mut Report, warnings: &mut Vec<Warning>) -> Result<(), Rejection> {
    flush_notes(&mut r.notes, "", warnings);
    if r.organization_name.is_none() {
        warnings.push(Warning::new("missing-field", "organization-name", ""));
    }
    if r.report_id.is_none() {
        warnings.push(Warning::new(
            "missing-field",
            "report-id",
            "deduplicated by content",
        ));
    }
    if r.contact_info.is_none() && !r.extra.contains_key("contact-info") {
        warnings.push(Warning::new("missing-field", "contact-info", ""));
    }

    let dr = r
        .date_range
        .as_mut()
        .ok_or(Rejection::Missing("date-range"))?;
    flush_notes(&mut dr.notes, "date-range", warnings);
    let start = normalise_datetime(
        &mut dr.start_datetime,
        "date-range.start-datetime",
        warnings,
    )?;
    let end = normalise_datetime(&mut dr.end_datetime, "date-range.end-datetime", warnings)?;
    if end < start {
        warnings.push(Warning::new(
            "date-range-reversed",
            "date-range",
            "end is before start",
        ));
    }

    let policies = r.policies.as_mut().ok_or(Rejection::Missing("policies"))?;
    for (i, p) in policies.iter_mut().enumerate() {
        normalise_policy_result(p, &format!("policies[{i}]"), warnings)?;
    }
    Ok(())
}

fn normalise_policy_result(
    p: &mut PolicyResult,
    path: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), Rejection> {
    flush_notes(&mut p.notes, path, warnings);
    let pol = p.policy.as_mut().ok_or_else(|| Rejection::Invalid {
        path: path.to_owned(),
        why: "has no policy object",
    })?;
    let ppath = format!("{path}.policy");
    flush_notes(&mut pol.notes, &ppath, warnings);
    let ptype = pol.policy_type.as_ref().ok_or_else(|| Rejection::Invalid {
        path: format!("{ppath}.policy-type"),
        why: "is missing",
    })?;
    if !ptype.is_known() {
        warnings.push(Warning::new(
            "unknown-policy-type",
            format!("{ppath}.policy-type"),
            ptype.as_str(),
        ));
    }
    let is_tlsa = *ptype == PolicyType::Tlsa;
    if pol.policy_domain.is_none() {
        warnings.push(Warning::new(
            "missing-field",
            format!("{ppath}.policy-domain"),
            "",
        ));
    }
    if let Some(ps) = pol.policy_string.as_mut() {
        // Microsoft, for TLSA: one element that is itself a JSON array of records.
        if is_tlsa && ps.len() == 1 && ps[0].trim_start().starts_with('[') {
            if let Ok(items) = serde_json::from_str::<Vec<String>>(&ps[0]) {
                *ps = items;
                warnings.push(Warning::new(
                    "policy-string-json-in-string",
                    format!("{ppath}.policy-string"),
                    "one element held a JSON array of records; stored as the array",
                ));
            }
        }
        // Google once copied a CRLF mta-sts.txt: every line ends in "\r".
        let mut stripped = 0;
        for line in ps.iter_mut() {
            let t = line.trim_end_matches(['\r', '\n']).len();
            if t != line.len() {
                line.truncate(t);
                stripped += 1;
            }
        }
        if stripped > 0 {
            warnings.push(Warning::new(
                "policy-string-trailing-cr",
                format!("{ppath}.policy-string"),
                format!("{stripped} element(s) ended in CR/LF; stripped"),
            ));
        }
    }

    if let Some(s) = p.summary.as_mut() {
        let spath = format!("{path}.summary");
        flush_notes(&mut s.notes, &spath, warnings);
        for (v, k) in [
            (
                s.total_successful_session_count,
                "total-successful-session-count",
            ),
            (s.total_failure_session_count, "total-failure-session-count"),
        ] {
            if v.is_none() && !s.extra.contains_key(k) {
                warnings.push(Warning::new("missing-field", format!("{spath}.{k}"), ""));
            }
        }
    } else {
        warnings.push(Warning::new("missing-field", format!("{path}.summary"), ""));
    }

    if let Some(details) = p.failure_details.as_mut() {
        let mut sum: u64 = 0;
        for (j, d) in details.iter_mut().enumerate() {
            // Cheap check first: most rows are clean and need no path string.
            if d.notes.is_empty()
                && d.extra.is_empty()
                && d.result_type.as_ref().is_some_and(ResultType::is_known)
                && d.failed_session_count.is_some()
            {
                sum = sum.saturating_add(d.failed_session_count.unwrap_or(0));
                continue;
            }
            let dpath = format!("{path}.failure-details[{j}]");
            flush_notes(&mut d.notes, &dpath, warnings);
            legacy_key(
                &mut d.extra,
                &mut d.failure_reason_code,
                "failure-error-code",
                "failure-reason-code",
                &dpath,
                warnings,
            );
            legacy_key(
                &mut d.extra,
                &mut d.receiving_mx_hostname,
                "receiving-mx-host-name",
                "receiving-mx-hostname",
                &dpath,
                warnings,
            );
            legacy_key(
                &mut d.extra,
                &mut d.additional_information,
                "additional-info-uri",
                "additional-information",
                &dpath,
                warnings,
            );
            match &d.result_type {
                None => warnings.push(Warning::new(
                    "missing-field",
                    format!("{dpath}.result-type"),
                    "",
                )),
                Some(t) if !t.is_known() => warnings.push(Warning::new(
                    "unknown-result-type",
                    format!("{dpath}.result-type"),
                    t.as_str(),
                )),
                Some(_) => {}
            }
            match d.failed_session_count {
                Some(c) => sum = sum.saturating_add(c),
                None => warnings.push(Warning::new(
                    "missing-field",
                    format!("{dpath}.failed-session-count"),
                    "",
                )),
            }
        }
        let reported = p
            .summary
            .as_ref()
            .and_then(|s| s.total_failure_session_count);
        if let Some(total) = reported {
            if !details.is_empty() && sum != total {
                warnings.push(Warning::new(
                    "failure-count-mismatch",
                    format!("{path}.failure-details"),
                    format!("details add up to {sum}, summary says {total}"),
                ));
            }
        }
    }
    Ok(())
}

/// Session totals over all policies, for the record and for alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub policies: usize,
    #[serde(rename = "successful-sessions")]
    pub successful: u64,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
    #[serde(rename = "failure-details")]
    pub failure_details: usize,
}

impl Report {
    pub fn policies(&self) -> &[PolicyResult] {
        self.policies.as_deref().unwrap_or(&[])
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            policies: self.policies().len(),
            ..Totals::default()
        };
        for p in self.policies() {
            if let Some(s) = &p.summary {
                t.successful = t
                    .successful
                    .saturating_add(s.total_successful_session_count.unwrap_or(0));
                t.failed = t
                    .failed
                    .saturating_add(s.total_failure_session_count.unwrap_or(0));
            }
            t.failure_details += p.failure_details.as_ref().map_or(0, Vec::len);
        }
        t
    }

    /// Distinct policy domains, in report order.
    pub fn policy_domains(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for d in self
            .policies()
            .iter()
            .filter_map(|p| p.policy.as_ref()?.policy_domain.as_deref())
        {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(p: &Parsed) -> Vec<&'static str> {
        p.warnings.iter().map(|w| w.code).collect()
    }

    const MIN: &str = r#"{"organization-name":"O","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"contact-info":"a@b","report-id":"x","policies":[{"policy":{"policy-type":"sts","policy-domain":"d"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;

    #[test]
    fn clean_report_has_no_warnings() {
        let p = parse(MIN.as_bytes()).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let back: Value = serde_json::to_value(&p.report).unwrap();
        let orig: Value = serde_json::from_str(MIN).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn wrong_types_are_kept_not_dropped() {
        let s = MIN
            .replace(r#""contact-info":"a@b""#, r#""contact-info":null"#)
            .replace(
                r#""total-failure-session-count":0"#,
                r#""total-failure-session-count":"7","x-new":[1]"#,
            );
        let p = parse(s.as_bytes()).unwrap();
        let back: Value = serde_json::to_value(&p.report).unwrap();
        assert_eq!(back["contact-info"], Value::Null);
        assert_eq!(
            back["policies"][0]["summary"]["total-failure-session-count"],
            7
        );
        assert_eq!(
            back["policies"][0]["summary"]["x-new"],
            serde_json::json!([1])
        );
        assert_eq!(codes(&p), vec!["unexpected-type", "count-as-string"]);
        assert_eq!(p.warnings[0].path, "contact-info");
        assert_eq!(
            p.warnings[1].path,
            "policies[0].summary.total-failure-session-count"
        );
    }

    #[test]
    fn unusable_reports_are_rejected() {
        let cases = [
            ("[]", "invalid JSON"),
            ("{", "invalid JSON"),
            (r#"{"policies":[]}"#, "date-range is missing"),
            (
                &MIN.replace("2024-01-01T00:00:00Z", "April fools"),
                "not an RFC 3339",
            ),
            (
                &MIN.replace(r#""policies":["#, r#""x":["#),
                "policies is missing",
            ),
            (
                &MIN.replace(r#""policy-type":"sts","#, ""),
                "policy-type is missing",
            ),
        ];
        for (doc, want) in cases {
            let e = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    /// Found by the `report` fuzz target: a known key repeated with another type was
    /// stored twice (once typed, once in `extra`), so the record had a duplicate key.
    #[test]
    fn repeated_keys_last_wins_and_are_recorded() {
        for (first, second, want) in [
            (r#"["x"]"#, r#""d.example""#, Value::from("d.example")),
            (r#""d.example""#, r#"["x"]"#, serde_json::json!(["x"])),
        ] {
            let doc = MIN.replace(
                r#""policy-domain":"d""#,
                &format!(r#""policy-domain":{first},"policy-domain":{second}"#),
            );
            let p = parse(doc.as_bytes()).unwrap();
            let out = serde_json::to_string(&p.report).unwrap();
            assert_eq!(out.matches("\"policy-domain\"").count(), 1, "{out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["policies"][0]["policy"]["policy-domain"], want);
            let again = serde_json::to_string(&parse(out.as_bytes()).unwrap().report).unwrap();
            assert_eq!(again, out, "idempotent");
        }
    }

    #[test]
    fn policies_not_an_array_is_rejected_but_kept_raw_first() {
        let s = MIN.replace(r#""policies":[{"#, r#""policies":"none","y":[{"#);
        let e = parse(s.as_bytes()).unwrap_err();
        assert_eq!(e, Rejection::Missing("policies"));
    }
}
