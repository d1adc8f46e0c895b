//! `tlsrpt watch` against the world of tests/world/up.sh (NSD, unbound, Postfix, nginx in
//! the disposable root): an expiring certificate as a metric, a finding and a firing
//! promtool alert; a policy changed between runs without a new id (and nothing when
//! nothing changed); an MX host added to the zone that the policy does not cover; a
//! certificate rolled under a DANE-EE record; a domain taken from a spool's reports, and
//! a stranger's domain never connected to. World tests are #[ignore]d on the host
//! (tests/run.sh runs them in the root); the last test needs nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::world::world;
use common::*;
use serde_json::{Value, json};

/// One watch run against the world: (exit status, JSON document, textfile samples).
/// Runs start at least a second apart: the memory's clock has one-second steps, as an
/// hourly timer's runs have hours between them.
fn watch(state: &Path, args: &[&str]) -> (i32, Value, BTreeMap<String, f64>) {
    std::thread::sleep(Duration::from_millis(1100));
    let w = world();
    let tf = state.with_extension("prom");
    let mut a = vec![
        "watch".to_owned(),
        "--state".into(),
        state.to_str().unwrap().into(),
        "--textfile".into(),
        tf.to_str().unwrap().into(),
        "--ca-file".into(),
        w.ca.to_str().unwrap().into(),
        "--allow-private-addresses".into(),
        "--timeout".into(),
        "3".into(),
        "--format".into(),
        "json".into(),
    ];
    if !args.contains(&"--nameserver") {
        a.extend(["--nameserver".into(), "127.0.0.1".into()]);
    }
    a.extend(args.iter().map(|s| s.to_string()));
    let t = Instant::now();
    let o = Command::new(BIN).args(&a).output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "watch {args:?} took {:?}",
        t.elapsed()
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "watch {args:?}: not JSON ({e}): {}{}",
            stdout(&o),
            stderr(&o)
        )
    });
    let status = o.status.code().unwrap();
    assert_eq!(
        doc["status"], status,
        "the document's status is the exit status"
    );
    let text = std::fs::read_to_string(&tf).expect("the textfile is written on every run");
    (status, doc, samples(&text))
}

/// The findings of `domain`: (code, severity, host, message).
fn findings(doc: &Value, domain: &str) -> Vec<(String, String, String, String)> {
    let d = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == domain)
        .unwrap_or_else(|| panic!("{domain} not checked: {doc:#}"));
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["host"].as_str().unwrap_or("").to_owned(),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn finding<'a>(
    f: &'a [(String, String, String, String)],
    code: &str,
) -> Option<&'a (String, String, String, String)> {
    f.iter().find(|x| x.0 == code)
}

/// Go's humanizeDuration for whole seconds of a day or more (Prometheus templates).
fn humanize_days(v: i64) -> String {
    format!(
        "{}d {}h {}m {}s",
        v / 86400,
        v / 3600 % 24,
        v / 60 % 60,
        v % 60
    )
}

fn promtool() -> PathBuf {
    require_tool(
        &["/usr/bin/promtool", "/usr/local/bin/promtool"],
        "prometheus",
    )
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound) and promtool"]
fn an_expiring_certificate_is_a_metric_a_finding_and_a_firing_alert() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let before = now();
    let (status, doc, m) = watch(&state, &["--domain", "soon.plain.test"]);
    let after = now();
    assert!(status >= 1, "{doc:#}");
    let f = findings(&doc, "soon.plain.test");
    let soon = finding(&f, "certificate-expires-soon").unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(soon.2, "mx.soon.plain.test");
    // up.sh made it expire 5 days after the world was set up (minutes ago).
    let key = "tlsrpt_mx_certificate_not_after_timestamp_seconds{policy_domain=\"soon.plain.test\",mx=\"mx.soon.plain.test\",address=\"127.0.0.15\"}";
    let not_after = *m.get(key).unwrap_or_else(|| panic!("no {key}: {m:#?}")) as i64;
    assert!(
        (before + 4 * 86400..=after + 5 * 86400).contains(&not_after),
        "{not_after}"
    );
    assert_eq!(
        m.get(&format!(
            "tlsrpt_domain_finding{{policy_domain=\"soon.plain.test\",code=\"certificate-expires-soon\",severity=\"{}\"}}",
            soon.1
        )),
        Some(&1.0)
    );
    assert_eq!(m.get("tlsrpt_mx_starttls{policy_domain=\"soon.plain.test\",mx=\"mx.soon.plain.test\",address=\"127.0.0.15\"}"), Some(&1.0));
    let last = m["tlsrpt_watch_last_run_timestamp_seconds"] as i64;
    assert!((before..=after).contains(&last), "{last}");
    assert_eq!(m["tlsrpt_watch_domains{state=\"checked\"}"], 1.0);

    // The shipped rule on these series, the clock moved so that promtool's time 0 is
    // the run's: the textfile's values less the run's time.
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus/tlsrpt-watch.rules.yml");
    let left = not_after - last;
    let series = format!(
        "      - series: '{}'\n        values: '{left}x3'\n      - series: 'tlsrpt_watch_last_run_timestamp_seconds{{instance=\"mx1\",job=\"node\"}}'\n        values: '0x3'\n",
        key.replacen('{', "{instance=\"mx1\",job=\"node\",", 1)
    );
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1h\n    input_series:\n{series}    alert_rule_test:\n      - eval_time: 1h\n        alertname: TlsrptMxCertificateExpiresSoon\n        exp_alerts:\n          - exp_labels: {{severity: warning, instance: mx1, job: node, policy_domain: soon.plain.test, mx: mx.soon.plain.test}}\n            exp_annotations:\n              summary: \"mx.soon.plain.test (soon.plain.test): certificate expires in {}\"\n              description: \"Renew it before senders see certificate-expired; then check: tlsrpt check-domain soon.plain.test\"\n      - eval_time: 1h\n        alertname: TlsrptMxCertificateExpired\n        exp_alerts: []\n",
        rules.display(),
        humanize_days(left - 3600)
    );
    let f = t.path().join("soon.test.yml");
    std::fs::write(&f, &test).unwrap();
    let o = Command::new(promtool())
        .args(["test", "rules"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool test rules:\n{test}\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn a_policy_changed_without_a_new_id_and_nothing_when_nothing_changed() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let policy = world().dir.join("www/watch/watched.txt");
    std::fs::write(
        &policy,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 86400\r\n",
    )
    .unwrap();
    for run in 0..2 {
        let (status, doc, m) = watch(&state, &["--domain", "watched.plain.test"]);
        let f = findings(&doc, "watched.plain.test");
        assert!(
            finding(&f, "sts-policy-changed-without-id").is_none(),
            "run {run}: {f:?}"
        );
        assert_eq!(status, 0, "run {run}: {f:?}");
        assert_eq!(
            m.get("tlsrpt_domain_sts_mode{policy_domain=\"watched.plain.test\",mode=\"enforce\"}"),
            Some(&1.0)
        );
    }
    // Lowered to testing, another max_age, the same id in DNS.
    std::fs::write(
        &policy,
        "version: STSv1\r\nmode: testing\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n",
    )
    .unwrap();
    let (status, doc, m) = watch(&state, &["--domain", "watched.plain.test"]);
    let f = findings(&doc, "watched.plain.test");
    let c = finding(&f, "sts-policy-changed-without-id").unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(c.1, "error");
    assert!(c.3.contains("\"2026120601\""), "{}", c.3);
    assert!(c.3.contains("mode enforce"), "what changed: {}", c.3);
    assert_eq!(
        finding(&f, "sts-mode-lowered").map(|x| x.1.as_str()),
        Some("warning")
    );
    assert_eq!(status, 2);
    assert_eq!(
        m.get("tlsrpt_domain_finding{policy_domain=\"watched.plain.test\",code=\"sts-policy-changed-without-id\",severity=\"error\"}"),
        Some(&1.0)
    );
    assert_eq!(
        m.get("tlsrpt_domain_sts_max_age_seconds{policy_domain=\"watched.plain.test\"}"),
        Some(&604800.0)
    );
    // It stays while senders may hold the old policy (its max_age from the change).
    let (_, doc, _) = watch(&state, &["--domain", "watched.plain.test"]);
    assert!(
        finding(
            &findings(&doc, "watched.plain.test"),
            "sts-policy-changed-without-id"
        )
        .is_some()
    );
    // --history tells the change.
    let o = run(&[
        "watch",
        "--state",
        state.to_str().unwrap(),
        "--history",
        "watched.plain.test",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = stdout(&o);
    assert!(
        h.lines()
            .any(|l| l.contains("new: MTA-STS policy: mode testing, max_age 604800")),
        "{h}"
    );
    assert!(
        h.lines()
            .any(|l| l.contains("last seen: MTA-STS policy: mode enforce, max_age 86400")),
        "{h}"
    );
    std::fs::write(
        &policy,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 86400\r\n",
    )
    .unwrap();
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn an_mx_added_to_the_zone_that_the_policy_does_not_cover() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    // NSD itself (no cache between the zone and the watch).
    let ns = [
        "--domain",
        "added.plain.test",
        "--nameserver",
        "127.0.0.1:5353",
    ];
    let (status, doc, _) = watch(&state, &ns);
    let f = findings(&doc, "added.plain.test");
    assert!(finding(&f, "sts-mx-not-covered").is_none(), "{f:?}");
    assert_eq!(status, 0, "{f:?}");

    let w = world();
    let zone = w.dir.join("plain.test.zone.signed");
    let mut z = std::fs::read_to_string(&zone).unwrap();
    z.push_str("\nadded.plain.test. 3600 IN MX 20 mx.uncovered-b.plain.test.\n");
    std::fs::write(&zone, z).unwrap();
    let pid = std::fs::read_to_string(w.dir.join("nsd.pid")).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        let o = Command::new("drill")
            .args(["-p", "5353", "@127.0.0.1", "MX", "added.plain.test"])
            .output()
            .unwrap();
        if stdout(&o).contains("mx.uncovered-b.plain.test") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "NSD did not serve the new MX: {}",
            stdout(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, doc, m) = watch(&state, &ns);
    let f = findings(&doc, "added.plain.test");
    let n = finding(&f, "sts-mx-not-covered").unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!(
        (n.1.as_str(), n.2.as_str()),
        ("error", "mx.uncovered-b.plain.test")
    );
    assert!(n.3.contains("joined the MX set at"), "{}", n.3);
    assert_eq!(status, 2);
    assert_eq!(
        m.get("tlsrpt_domain_finding{policy_domain=\"added.plain.test\",code=\"sts-mx-not-covered\",severity=\"error\"}"),
        Some(&1.0)
    );
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn a_certificate_rolled_under_a_dane_ee_record() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let d = "danebad.signed.test";
    let mx = "mx.danebad.signed.test";
    let (_, doc, m) = watch(&state, &["--domain", d]);
    let first = findings(&doc, d);
    assert!(
        finding(&first, "tlsa-names-old-certificate").is_none(),
        "no memory of an earlier key yet: {first:?}"
    );
    assert_eq!(
        m.get(&format!(
            "tlsrpt_mx_tlsa_match{{policy_domain=\"{d}\",mx=\"{mx}\",address=\"127.0.0.20\"}}"
        )),
        Some(&0.0)
    );
    // The memory of the hours before: the MX served the key its TLSA record names
    // (3 1 1: the SHA-256 of that key), and the record matched it.
    let file = state.join("watch.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let h = &mut st["domains"][d];
    let checked = h["checked-at"].as_i64().unwrap();
    let seen = h["seen"].as_array_mut().unwrap();
    let record = seen
        .iter()
        .find(|s| s["kind"] == "tlsa" && s["mx"] == mx)
        .unwrap_or_else(|| panic!("no TLSA remembered: {seen:#?}"))["record"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_key = record.rsplit(' ').next().unwrap().to_ascii_lowercase();
    let new_key = seen
        .iter()
        .find(|s| s["kind"] == "certificate" && s["mx"] == mx)
        .unwrap_or_else(|| panic!("no certificate remembered: {seen:#?}"))["spki-sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old_key, new_key);
    seen.push(json!({
        "kind": "certificate", "mx": mx, "spki-sha256": old_key, "not-after": checked + 30 * 86400,
        "tlsa": [record], "first": checked - 7200, "last": checked - 3600
    }));
    std::fs::write(&file, serde_json::to_vec(&st).unwrap()).unwrap();

    let (status, doc, m) = watch(&state, &["--domain", d]);
    let f = findings(&doc, d);
    let r = finding(&f, "tlsa-names-old-certificate").unwrap_or_else(|| panic!("{f:?}"));
    assert_eq!((r.1.as_str(), r.2.as_str()), ("error", mx));
    assert!(
        r.3.contains(&format!("3 1 1 {new_key}")),
        "the record to publish: {}",
        r.3
    );
    assert_eq!(status, 2);
    assert_eq!(
        m.get(&format!(
            "tlsrpt_domain_finding{{policy_domain=\"{d}\",code=\"tlsa-names-old-certificate\",severity=\"error\"}}"
        )),
        Some(&1.0)
    );
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn domains_from_the_spool_only_ours_and_never_a_strangers_host() {
    let w = world();
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let s = Spool::new(t.path(), "spool");
    let day = now() - now() % DAY - DAY;
    // Ours: good.plain.test's record sends its reports to tls-reports@good.plain.test,
    // where this one arrived.
    s.put(&record(
        "Google Inc.",
        "ours-1",
        day,
        day + DAY + 60,
        true,
        vec![policy("sts", "good.plain.test", 10, 0, vec![])],
    ));
    // A stranger's: DKIM-valid, delivered here, for a domain whose record sends its
    // reports elsewhere (tls-reports@refused.plain.test): its MX (the counting server
    // on 127.0.0.65) must never be connected to.
    let mut stranger = record(
        "Google Inc.",
        "stranger-1",
        day,
        day + DAY + 120,
        true,
        vec![policy("sts", "refused.plain.test", 10, 5, vec![])],
    );
    stranger["envelope"]["recipient"] = json!("tls-reports@good.plain.test");
    s.put(&stranger);
    let before = w.accepted[4].load(Ordering::SeqCst);
    let (status, doc, m) = watch(&state, &["--spool", s.dir.to_str().unwrap()]);
    assert_eq!(
        w.accepted[4].load(Ordering::SeqCst),
        before,
        "connected to a stranger's MX"
    );
    let checked: Vec<&str> = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(checked, ["good.plain.test"], "{doc:#}");
    assert_eq!(
        doc["not-ours"][0]["domain"], "refused.plain.test",
        "{doc:#}"
    );
    assert_eq!(status, 0, "{doc:#}");
    assert_eq!(m["tlsrpt_watch_domains{state=\"checked\"}"], 1.0);
    assert_eq!(m["tlsrpt_watch_domains{state=\"not-ours\"}"], 1.0);
    assert!(
        !m.keys().any(|k| k.contains("refused.plain.test")),
        "a stranger's domain in the textfile"
    );
}

/// Nothing to watch is UNKNOWN, said, and the textfile still written (the stale and
/// status alerts need it). No network, no world.
#[test]
fn nothing_to_watch_is_unknown_and_the_textfile_is_written() {
    let t = tempfile::tempdir().unwrap();
    let tf = t.path().join("watch.prom");
    let o = run(&[
        "watch",
        "--state",
        t.path().join("state").to_str().unwrap(),
        "--textfile",
        tf.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("watch unknown: no domain to watch"),
        "{}",
        stdout(&o)
    );
    let m = samples(&std::fs::read_to_string(&tf).unwrap());
    assert_eq!(m["tlsrpt_watch_status"], 3.0);
    assert_eq!(m["tlsrpt_watch_domains{state=\"checked\"}"], 0.0);
    // The history of a domain never watched: said, UNKNOWN.
    let o = run(&[
        "watch",
        "--state",
        t.path().join("state").to_str().unwrap(),
        "--history",
        "example.com",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("example.com: not watched"),
        "{}",
        stderr(&o)
    );
}

/// The monitoring-plugins form of the live check (for shops without Prometheus): one
/// line with the status and perfdata of the days to the first certificate expiry, a
/// line per finding, the exit status the line says.
#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn check_domain_as_a_monitoring_plugin() {
    let w = world();
    let plugin = |d: &str| {
        let o = run(&[
            "check-domain",
            "--nameserver",
            "127.0.0.1",
            "--ca-file",
            w.ca.to_str().unwrap(),
            "--allow-private-addresses",
            "--timeout",
            "3",
            "--format",
            "plugin",
            d,
        ]);
        (o.status.code().unwrap(), stdout(&o))
    };
    let (st, out) = plugin("soon.plain.test");
    let first = out.lines().next().unwrap();
    let days = first
        .split("days_to_expiry=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no days_to_expiry: {out}"));
    assert!((4..=5).contains(&days), "{out}");
    assert!(
        first.contains("days_to_expiry=") && first.contains(";14:;0:"),
        "{out}"
    );
    let label = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][st as usize];
    assert!(
        first.starts_with(&format!("TLSRPT {label} - soon.plain.test: ")),
        "{out}"
    );
    assert!(st >= 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("certificate-expires-soon mx.soon.plain.test: ")),
        "{out}"
    );
    let (st, out) = plugin("good.plain.test");
    assert_eq!(st, 0, "{out}");
    assert!(out.starts_with("TLSRPT OK - good.plain.test: "), "{out}");
    assert!(out.contains("errors=0;;0;0 warnings=0;0;;0"), "{out}");
    let (st, out) = plugin("expired-sts.plain.test");
    assert_eq!(st, 2, "{out}");
    assert!(out.starts_with("TLSRPT CRITICAL - "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("CRITICAL: expired-sts.plain.test certificate-expired")),
        "{out}"
    );
}

/// The summary (table, HTML, JSON; the digest is made of the first two) shows what the
/// watch last found beside the reports of each domain it checks, and the changes inside
/// the window; a stale or absent memory is said, never an empty "all is well". The
/// memory is written here as a run would leave it.
#[test]
fn the_summary_shows_what_the_watch_found() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    let n = now();
    let day = n - n % DAY - DAY;
    s.put(&record(
        "Google Inc.",
        "w-1",
        day,
        day + DAY + 60,
        true,
        vec![policy("sts", "a.example", 90, 0, vec![])],
    ));
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let memory = |last_run: i64| {
        json!({
            "version": 1,
            "last-run": last_run,
            "domains": {"a.example": {
                "observed": {"sts-policy": last_run, "sts-record": last_run},
                "seen": [
                    {"kind": "sts-id", "id": "20260101", "first": day - 40 * DAY, "last": last_run},
                    {"kind": "sts-policy", "mode": "enforce", "max-age": 604800, "mx": ["mx.a.example"],
                     "text": "version: STSv1", "first": day - 40 * DAY, "last": day - 3600},
                    {"kind": "sts-policy", "mode": "testing", "max-age": 604800, "mx": ["mx.a.example"],
                     "text": "version: STSv1", "first": day, "last": last_run}
                ],
                "checked-at": last_run,
                "status": 2,
                "findings": [
                    {"code": "sts-policy-changed-without-id", "severity": "error",
                     "message": "the MTA-STS policy of a.example changed <b>here</b>"},
                    {"code": "sts-max-age-short", "severity": "info", "message": "an info line"}
                ]
            }}
        })
    };
    std::fs::write(state.join("watch.json"), memory(n - 600).to_string()).unwrap();
    let summary = |format: &str| {
        let o = run(&[
            "summary",
            "--spool",
            s.dir.to_str().unwrap(),
            "--since",
            "7d",
            "--watch-state",
            state.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let text = summary("table");
    assert!(text.contains("tlsrpt watch, checked "), "{text}");
    assert!(
        text.contains("error sts-policy-changed-without-id:"),
        "{text}"
    );
    assert!(
        text.contains("new:") && text.contains("MTA-STS policy: mode testing"),
        "{text}"
    );
    assert!(
        !text.contains("an info line"),
        "info findings are not shown: {text}"
    );
    assert!(text.contains("tlsrpt watch last ran at"), "{text}");
    let html = summary("html");
    assert!(html.contains("tlsrpt watch, checked"), "{html}");
    assert!(
        html.contains("changed &lt;b&gt;here&lt;/b&gt;"),
        "escaped: {html}"
    );
    let doc: Value = serde_json::from_str(&summary("json")).unwrap();
    let d = domain(&doc, "a.example");
    assert_eq!(d["watch"]["status"], 2);
    assert_eq!(d["watch"]["findings"].as_array().unwrap().len(), 1);
    let changes: Vec<(&str, &str)> = d["watch"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap(), c["what"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "last seen",
                "MTA-STS policy: mode enforce, max_age 604800, mx mx.a.example"
            ),
            (
                "new",
                "MTA-STS policy: mode testing, max_age 604800, mx mx.a.example"
            )
        ]
    );
    assert!(doc["watch"]["problem"].is_null(), "{:#}", doc["watch"]);

    // A memory four hours old: said stale.
    std::fs::write(state.join("watch.json"), memory(n - 4 * 3600).to_string()).unwrap();
    let doc: Value = serde_json::from_str(&summary("json")).unwrap();
    assert!(
        doc["watch"]["problem"]
            .as_str()
            .unwrap()
            .contains("is its timer running?"),
        "{:#}",
        doc["watch"]
    );
    // None at all: said.
    std::fs::remove_file(state.join("watch.json")).unwrap();
    let text = summary("table");
    assert!(text.contains("tlsrpt watch has not run yet"), "{text}");
}
