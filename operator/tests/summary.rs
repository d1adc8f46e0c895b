//! `tlsrpt summary` and `tlsrpt export` on generated spools: each counting rule pinned,
//! figures compared with totals known by construction, every bad-input case, the exit
//! statuses and the output formats.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// The window used below: the 10 days from T0 (reports starting T0 .. T0+9d).
fn win() -> Vec<String> {
    vec![
        "--since".into(),
        iso(T0),
        "--until".into(),
        iso(T0 + 10 * DAY),
    ]
}

/// `extra` (a subcommand first, where there is one), then the window arguments.
fn args<'a>(base: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = extra.to_vec();
    v.extend(base.iter().map(String::as_str));
    v
}

#[test]
fn sts_and_tlsa_of_one_report_count_once_per_domain() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    // Microsoft's shape: the same 100 + 4 sessions under sts and under tlsa.
    let both = vec![
        policy(
            "sts",
            "example.com",
            100,
            4,
            vec![detail(
                "starttls-not-supported",
                4,
                "203.0.113.1",
                "mx1.example.com",
            )],
        ),
        policy(
            "tlsa",
            "Example.COM.",
            100,
            4,
            vec![detail(
                "starttls-not-supported",
                4,
                "203.0.113.1",
                "mx1.example.com",
            )],
        ),
    ];
    s.put(&record(
        "Microsoft Corporation",
        "ms-1",
        T0 + DAY,
        T0 + 2 * DAY + 3600,
        true,
        both,
    ));
    s.put(&record(
        "Google Inc.",
        "g-1",
        T0 + DAY,
        T0 + 2 * DAY + 7200,
        true,
        vec![policy("sts", "example.com", 50, 0, vec![])],
    ));
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let doc = summary_json(&args(&base, &["--spool", &spool]));
    let d = domain(&doc, "example.com");
    assert_eq!(d["reports"], 2);
    assert_eq!(
        d["successful-sessions"], 150,
        "sts+tlsa counted twice? {d:#}"
    );
    assert_eq!(d["failed-sessions"], 4);
    assert_eq!(d["result-types"]["starttls-not-supported"], 4);
    assert_eq!(d["receiving-mx"]["mx1.example.com"], 4);
    assert_eq!(d["sending-ips"][0]["ip"], "203.0.113.1");
    // Per policy type: each type's own figures.
    assert_eq!(d["policy-types"]["sts"]["successful-sessions"], 150);
    assert_eq!(d["policy-types"]["sts"]["failed-sessions"], 4);
    assert_eq!(d["policy-types"]["sts"]["reports"], 2);
    assert_eq!(d["policy-types"]["tlsa"]["successful-sessions"], 100);
    assert_eq!(d["policy-types"]["tlsa"]["reports"], 1);
    assert_eq!(
        d["organizations"]["Microsoft Corporation"]["failed-sessions"],
        4
    );
    // The advice for the result type present.
    let adv = &d["advice"][0];
    assert_eq!(adv["result-type"], "starttls-not-supported");
    assert!(adv["meaning"].as_str().unwrap().contains("downgrade"));
    assert!(adv["check"].as_str().unwrap().contains("s_client"));
}

#[test]
fn a_report_in_two_spools_or_twice_in_one_counts_once() {
    let t = tempfile::tempdir().unwrap();
    let a = Spool::new(t.path(), "mx1");
    let b = Spool::new(t.path(), "mx2");
    let r = record(
        "Google Inc.",
        "dup-1",
        T0 + 2 * DAY,
        T0 + 3 * DAY + 60,
        true,
        vec![policy(
            "sts",
            "example.com",
            10,
            2,
            vec![detail(
                "certificate-expired",
                2,
                "198.51.100.7",
                "mx1.example.com",
            )],
        )],
    );
    a.put(&r);
    // Redelivered to the same spool a day later (a different day file) and to the other MX.
    let mut later = r.clone();
    later["received-at"] = Value::String(iso(T0 + 4 * DAY));
    a.put(&later);
    b.put(&r);
    b.put(&record(
        "Google Inc.",
        "other",
        T0 + 3 * DAY,
        T0 + 4 * DAY,
        true,
        vec![policy("sts", "example.com", 5, 0, vec![])],
    ));
    let (sa, sb) = (
        a.dir.to_str().unwrap().to_owned(),
        b.dir.to_str().unwrap().to_owned(),
    );
    let base = win();
    let doc = summary_json(&args(&base, &["--spool", &sa, "--spool", &sb]));
    let d = domain(&doc, "example.com");
    assert_eq!(d["reports"], 2);
    assert_eq!(d["successful-sessions"], 15);
    assert_eq!(d["failed-sessions"], 2);
    assert_eq!(d["result-types"]["certificate-expired"], 2);
    assert_eq!(doc["duplicates"], 2);
    // export applies the same rule.
    let o = run(&args(
        &base,
        &[
            "export", "--format", "jsonl", "--spool", &sa, "--spool", &sb,
        ],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
}

#[test]
fn unauthenticated_reports_are_counted_apart_unless_included() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    s.put(&record(
        "Good Org",
        "p-1",
        T0,
        T0 + DAY + 10,
        true,
        vec![policy("sts", "example.com", 100, 0, vec![])],
    ));
    s.put(&record(
        "Forger",
        "u-1",
        T0,
        T0 + DAY + 20,
        false,
        vec![policy(
            "sts",
            "example.com",
            0,
            1000,
            vec![detail(
                "starttls-not-supported",
                1000,
                "203.0.113.66",
                "mx1.example.com",
            )],
        )],
    ));
    s.put(&record(
        "Forger",
        "u-2",
        T0,
        T0 + DAY + 30,
        false,
        vec![policy("sts", "victim.example", 0, 7, vec![])],
    ));
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let doc = summary_json(&args(&base, &["--spool", &spool]));
    let d = domain(&doc, "example.com");
    assert_eq!(
        d["failed-sessions"], 0,
        "an unauthenticated report was mixed in"
    );
    assert_eq!(d["reports"], 1);
    assert_eq!(doc["domains"].as_array().unwrap().len(), 1);
    let u = &doc["unauthenticated"];
    assert_eq!(u["included"], false);
    assert_eq!(u["reports"], 2);
    assert_eq!(u["failed-sessions"], 1007);
    assert_eq!(u["domains"].as_array().unwrap().len(), 2);
    // The table says so, in words.
    let o = run(&args(&base, &["summary", "--spool", &spool]));
    assert!(
        stdout(&o).contains("Not counted above: 2 reports"),
        "{}",
        stdout(&o)
    );

    let doc = summary_json(&args(
        &base,
        &["--spool", &spool, "--include-unauthenticated"],
    ));
    assert_eq!(domain(&doc, "example.com")["failed-sessions"], 1000);
    assert_eq!(domain(&doc, "victim.example")["failed-sessions"], 7);
    assert_eq!(doc["unauthenticated"]["included"], true);
    assert_eq!(doc["unauthenticated"]["reports"], 0);
}

#[test]
fn late_arrivals_count_and_the_window_is_the_report_range() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    // In the window, but received 40 days later.
    s.put(&record(
        "Late Org",
        "late",
        T0 + 5 * DAY,
        T0 + 46 * DAY,
        true,
        vec![policy("sts", "example.com", 7, 1, vec![])],
    ));
    // Received in the window but reporting on days before it: previous window.
    s.put(&record(
        "Old Org",
        "old",
        T0 - 3 * DAY,
        T0 + DAY,
        true,
        vec![policy("sts", "example.com", 20, 5, vec![])],
    ));
    // After the window.
    s.put(&record(
        "Next Org",
        "next",
        T0 + 12 * DAY,
        T0 + 13 * DAY,
        true,
        vec![policy("sts", "example.com", 1000, 0, vec![])],
    ));
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let doc = summary_json(&args(&base, &["--spool", &spool]));
    let d = domain(&doc, "example.com");
    assert_eq!(
        (
            d["reports"].as_u64(),
            d["successful-sessions"].as_u64(),
            d["failed-sessions"].as_u64()
        ),
        (Some(1), Some(7), Some(1))
    );
    // The previous window of the same length holds the old report.
    assert_eq!(d["previous"]["successful-sessions"], 20);
    assert_eq!(d["previous"]["failed-sessions"], 5);
    assert_eq!(d["previous"]["change"]["failed-sessions"], -4);
    // One entry per day of the window for the chart; the report lands on its start day.
    let daily = d["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 10);
    assert_eq!(daily[5]["successful-sessions"], 7);
}

#[test]
fn bad_lines_are_skipped_named_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    s.put(&record(
        "Org",
        "good-1",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "example.com", 10, 1, vec![])],
    ));
    let f = day_name(T0 + DAY);
    s.append_raw(&f, b"this is not json\n");
    let mut newer = record(
        "Org",
        "v9",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "example.com", 999, 999, vec![])],
    );
    newer["version"] = 9.into();
    s.append_raw(&f, format!("{newer}\n").as_bytes());
    s.put(&record(
        "Org",
        "good-2",
        T0 + DAY,
        T0 + DAY + 5,
        true,
        vec![policy("sts", "example.com", 5, 0, vec![])],
    ));
    // A torn last line: a crash mid-write.
    s.append_raw(&f, br#"{"version":1,"received-at":"2026-03-02T00:"#);
    // An unreadable day file (a directory by that name: unreadable even for root).
    std::fs::create_dir(s.dir.join(day_name(T0 + 2 * DAY))).unwrap();
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let mut a = vec![
        "summary".to_owned(),
        "--format".into(),
        "json".into(),
        "--spool".into(),
        spool.clone(),
    ];
    a.extend(base.iter().cloned());
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["skipped-lines"], 3);
    assert_eq!(doc["unreadable-files"], 1);
    let d = domain(&doc, "example.com");
    assert_eq!(d["successful-sessions"], 15);
    assert_eq!(d["failed-sessions"], 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{f}:2: skipped: not a record")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:3: skipped: record schema version 9")),
        "{err}"
    );
    assert!(err.contains(&format!("{f}:5: skipped: torn line")), "{err}");
    assert!(err.contains("cannot read"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn exit_statuses() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let o = run(&["summary", "--spool", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("tlsrpt: no spool could be read"),
        "{err}"
    );
    let o = run(&["summary", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["summary", "--since", "2026-12-02", "--until", "2026-12-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["summary", "--format", "xml"]);
    assert_eq!(o.status.code(), Some(2));
    // One readable spool of two is enough.
    let s = Spool::new(t.path(), "ok");
    let o = run(&[
        "summary",
        "--spool",
        missing.to_str().unwrap(),
        "--spool",
        s.dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Expected figures of one domain, accumulated while generating.
#[derive(Default, Debug, Clone, PartialEq)]
struct Expect {
    reports: u64,
    ok: u64,
    failed: u64,
    types: BTreeMap<String, (u64, u64)>,
    results: BTreeMap<String, u64>,
    orgs: BTreeMap<String, u64>,
    /// Per result type: failed sessions per receiving MX, per failure-reason-code, and
    /// the organisations that reported it.
    #[allow(clippy::type_complexity)]
    why: BTreeMap<
        String,
        (
            BTreeMap<String, u64>,
            BTreeMap<String, u64>,
            std::collections::BTreeSet<String>,
        ),
    >,
}

#[test]
fn generated_spools_match_totals_known_by_construction() {
    let t = tempfile::tempdir().unwrap();
    let spools = [Spool::new(t.path(), "mx1"), Spool::new(t.path(), "mx2")];
    let domains: Vec<String> = (0..12).map(|i| format!("d{i}.example")).collect();
    let orgs = [
        "Google Inc.",
        "Microsoft Corporation",
        "Mail.ru",
        "mox",
        "Example Reporter",
    ];
    let results = [
        "certificate-expired",
        "starttls-not-supported",
        "sts-policy-fetch-error",
        "tlsa-invalid",
    ];
    let mut rng = Rng(42);
    let mut expect: BTreeMap<String, Expect> = BTreeMap::new();
    let mut unauth_failed = 0u64;
    let mut copies = 0u64;
    for n in 0..400 {
        let day = rng.below(14) as i64 - 2; // some before the window, some after
        let start = T0 + day * DAY;
        let org = orgs[rng.below(5) as usize];
        let pass = rng.below(5) != 0;
        let dual = rng.below(4) == 0; // Microsoft-style sts + tlsa for the same sessions
        let ndom = 1 + rng.below(3) as usize;
        let mut pols = Vec::new();
        let in_window = (1..=10).contains(&(day + 1)); // end = start + 1d in (T0, T0+10d]
        let mut per_dom = Vec::new();
        for k in 0..ndom {
            let d = &domains[(rng.below(12) as usize + k) % 12];
            if per_dom.contains(d) {
                continue;
            }
            per_dom.push(d.clone());
            let ok = rng.below(1000);
            let mut failed = 0;
            let mut details = Vec::new();
            for r in results {
                // One to three rows per result type: several MX hosts and
                // failure-reason-codes (seven codes: the top five and the rest summed).
                if rng.below(3) == 0 {
                    for _ in 0..1 + rng.below(3) {
                        let c = 1 + rng.below(20);
                        failed += c;
                        let mx = format!("mx{}.example.net", rng.below(3));
                        let mut dt = detail(r, c, &format!("203.0.113.{}", rng.below(50)), &mx);
                        dt["failure-reason-code"] = format!("REASON_{}", rng.below(7)).into();
                        details.push(dt);
                    }
                }
            }
            let types: &[&str] = if dual { &["sts", "tlsa"] } else { &["sts"] };
            for ty in types {
                pols.push(policy(ty, d, ok, failed, details.clone()));
            }
            if in_window && pass {
                let e = expect.entry(d.clone()).or_default();
                e.reports += 1;
                e.ok += ok;
                e.failed += failed;
                *e.orgs.entry(org.to_owned()).or_default() += 1;
                for ty in types {
                    let te = e.types.entry((*ty).to_owned()).or_default();
                    te.0 += ok;
                    te.1 += failed;
                }
                for dt in &details {
                    let rt = dt["result-type"].as_str().unwrap().to_owned();
                    let n = dt["failed-session-count"].as_u64().unwrap();
                    *e.results.entry(rt.clone()).or_default() += n;
                    let w = e.why.entry(rt).or_default();
                    *w.0.entry(dt["receiving-mx-hostname"].as_str().unwrap().to_owned())
                        .or_default() += n;
                    *w.1.entry(dt["failure-reason-code"].as_str().unwrap().to_owned())
                        .or_default() += n;
                    w.2.insert(org.to_owned());
                }
            } else if in_window {
                unauth_failed += failed;
            }
        }
        let received = start + DAY + rng.below(3 * DAY as u64) as i64;
        let rec = record(org, &format!("gen-{n}"), start, received, pass, pols);
        let which = rng.below(3);
        if which == 0 || which == 2 {
            spools[0].put(&rec);
        }
        if which == 1 || which == 2 {
            spools[1].put(&rec);
        }
        if which == 2 && in_window {
            copies += 1;
        }
    }
    let (a, b) = (
        spools[0].dir.to_str().unwrap().to_owned(),
        spools[1].dir.to_str().unwrap().to_owned(),
    );
    let base = win();
    let doc = summary_json(&args(&base, &["--spool", &a, "--spool", &b]));
    assert_eq!(doc["domains"].as_array().unwrap().len(), expect.len());
    for (name, e) in &expect {
        let d = domain(&doc, name);
        assert_eq!(d["reports"].as_u64(), Some(e.reports), "{name}");
        assert_eq!(d["successful-sessions"].as_u64(), Some(e.ok), "{name}");
        assert_eq!(d["failed-sessions"].as_u64(), Some(e.failed), "{name}");
        for (ty, (ok, failed)) in &e.types {
            assert_eq!(
                d["policy-types"][ty]["successful-sessions"].as_u64(),
                Some(*ok),
                "{name} {ty}"
            );
            assert_eq!(
                d["policy-types"][ty]["failed-sessions"].as_u64(),
                Some(*failed),
                "{name} {ty}"
            );
        }
        let got: BTreeMap<String, u64> = d["result-types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(got, e.results, "{name}");
        // Why, per result type: MX hosts and reason codes sum to the type's sessions.
        for (rt, (mx, reasons, orgs)) in &e.why {
            let a = d["advice"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["result-type"] == rt.as_str())
                .unwrap_or_else(|| panic!("{name}: no advice for {rt}"));
            let got_mx: BTreeMap<String, u64> = a["mx-hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["host"].as_str().unwrap().to_owned(),
                        m["failed-sessions"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(&got_mx, mx, "{name} {rt} mx-hosts");
            let got_reasons: Vec<(String, u64)> = a["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["failure-reason-code"].as_str().unwrap().to_owned(),
                        m["failed-sessions"].as_u64().unwrap(),
                    )
                })
                .collect();
            let mut want: Vec<(String, u64)> =
                reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
            want.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            if want.len() > 5 {
                let rest: u64 = want[5..].iter().map(|x| x.1).sum();
                let others = want.len() - 5;
                want.truncate(5);
                want.push((format!("({others} other codes)"), rest));
            }
            assert_eq!(got_reasons, want, "{name} {rt} reasons");
            assert_eq!(
                got_reasons.iter().map(|x| x.1).sum::<u64>(),
                e.results[rt],
                "{name} {rt}"
            );
            let got_orgs: std::collections::BTreeSet<String> = a["organizations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(&got_orgs, orgs, "{name} {rt} organizations");
        }
        let got: BTreeMap<String, u64> = d["organizations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["reports"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, e.orgs, "{name}");
    }
    assert_eq!(
        doc["unauthenticated"]["failed-sessions"].as_u64(),
        Some(unauth_failed)
    );
    assert_eq!(doc["duplicates"].as_u64(), Some(copies));
    // Most failing domain first.
    let failed: Vec<u64> = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["failed-sessions"].as_u64().unwrap())
        .collect();
    assert!(failed.windows(2).all(|w| w[0] >= w[1]), "{failed:?}");

    // The CSV aggregate carries the same figures: per domain, the result-type rows sum to
    // the domain's result types.
    let o = run(&args(
        &base,
        &["summary", "--format", "csv", "--spool", &a, "--spool", &b],
    ));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "policy_domain,authenticated,result_type,failed_session_count,reports_with_result_type,domain_reports,domain_successful_session_count,domain_failed_session_count,domain_failure_rate,previous_failed_session_count,mx_hosts,failure_reason_codes,organizations,live_verdict,live_evidence"
    );
    let mut csv_results: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f[1] == "true" && !f[2].is_empty() {
            csv_results
                .entry(f[0].to_owned())
                .or_default()
                .insert(f[2].to_owned(), f[3].parse().unwrap());
        }
    }
    for (name, e) in &expect {
        assert_eq!(
            csv_results.get(name).cloned().unwrap_or_default(),
            e.results,
            "csv {name}"
        );
    }

    // export csv: parsedmarc's header; one row per policy plus one per failure detail, every
    // policy column filled on failure rows; its policy rows sum to the per-type figures.
    let o = run(&[
        "export",
        "--format",
        "csv",
        "--spool",
        &a,
        "--spool",
        &b,
        "--since",
        &iso(T0),
        "--until",
        &iso(T0 + 10 * DAY),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let mut rows = text.lines();
    assert_eq!(
        rows.next().unwrap(),
        "organization_name,begin_date,end_date,report_id,result_type,successful_session_count,failed_session_count,policy_domain,policy_type,policy_strings,mx_host_patterns,sending_mta_ip,receiving_ip,receiving_mx_hostname,receiving_mx_helo,additional_info_uri,failure_reason_code"
    );
    let mut sts_ok: BTreeMap<String, u64> = BTreeMap::new();
    let mut detail_sum: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        let f: Vec<&str> = r.split(',').collect();
        assert_eq!(f.len(), 17, "{r}");
        assert!(
            !f[7].is_empty() && !f[8].is_empty(),
            "policy columns empty: {r}"
        );
        assert_eq!(f[10], "mx1.example.net", "mx_host_patterns empty: {r}");
        if f[4].is_empty() {
            if f[8] == "sts" {
                *sts_ok.entry(f[7].to_owned()).or_default() += f[5].parse::<u64>().unwrap();
            }
        } else if f[8] == "sts" {
            *detail_sum.entry(f[7].to_owned()).or_default() += f[6].parse::<u64>().unwrap();
            assert!(f[11].starts_with("203.0.113."), "{r}");
        }
    }
    for (name, e) in &expect {
        assert_eq!(
            sts_ok.get(name).copied().unwrap_or(0),
            e.types["sts"].0,
            "export {name}"
        );
        assert_eq!(
            detail_sum.get(name).copied().unwrap_or(0),
            e.types["sts"].1,
            "export {name}"
        );
    }
}

#[test]
fn table_fits_100_columns_and_colours_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    let long = format!("{}.example", "very-long-label-".repeat(6));
    s.put(&record(
        "An Organisation With A Remarkably Long Name Indeed, Inc.",
        "t-1",
        T0,
        T0 + DAY,
        true,
        vec![policy(
            "sts",
            &long,
            123456789,
            98765,
            vec![detail(
                "certificate-host-mismatch",
                98765,
                "2001:db8::1",
                "a-very-long-mx-host-name.mail.example.com",
            )],
        )],
    ));
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let o = run(&args(&base, &["summary", "--spool", &spool]));
    let text = stdout(&o);
    assert!(text.contains("certificate-host-mismatch"), "{text}");
    for l in text.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(!text.contains('\x1b'), "colour in a pipe");
    let o = run(&args(
        &base,
        &["summary", "--spool", &spool, "--color", "always"],
    ));
    assert!(stdout(&o).contains("\x1b[31m"));
    // On a terminal (script(1), from bsdutils, essential on Debian, gives it one): colour,
    // unless NO_COLOR is set.
    require_tool(&["/usr/bin/script"], "bsdutils");
    let cmdline = format!(
        "{BIN} summary --spool {spool} --since {} --until {}",
        iso(T0),
        iso(T0 + 10 * DAY)
    );
    let on_tty = |no_color: bool| {
        let mut c = std::process::Command::new("/usr/bin/script");
        c.args(["-qec", &cmdline, "/dev/null"])
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(
        on_tty(false).contains("\x1b[31m"),
        "no colour on a terminal"
    );
    assert!(!on_tty(true).contains("\x1b["), "colour despite NO_COLOR");
}

#[test]
fn spools_are_only_read() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    s.put(&record(
        "Org",
        "r-1",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "example.com", 1, 1, vec![])],
    ));
    s.append_raw(&day_name(T0 + DAY), b"{\"torn");
    let snapshot = || {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&s.dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            v.push((
                p.clone(),
                m.len(),
                m.modified().unwrap(),
                std::fs::read(&p).unwrap(),
            ));
        }
        v.sort();
        v
    };
    let before = snapshot();
    // Read-only files in a read-only directory: nothing needs write access.
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(&s.dir).unwrap() {
        std::fs::set_permissions(e.unwrap().path(), std::fs::Permissions::from_mode(0o440))
            .unwrap();
    }
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o550)).unwrap();
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    for f in ["table", "json", "csv", "html"] {
        let o = run(&args(&base, &["summary", "--spool", &spool, "--format", f]));
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
    }
    for f in ["csv", "jsonl"] {
        let o = run(&args(&base, &["export", "--spool", &spool, "--format", f]));
        assert_eq!(o.status.code(), Some(0), "{f}: {}", stderr(&o));
    }
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert_eq!(before, snapshot());
}

#[test]
fn digest_is_one_mime_message_and_sendmail_failure_is_exit_1() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    s.put(&record(
        "Google Inc.",
        "mail-1",
        T0,
        T0 + DAY,
        true,
        vec![policy(
            "sts",
            "example.com",
            90,
            10,
            vec![detail(
                "certificate-expired",
                10,
                "203.0.113.2",
                "mx1.example.com",
            )],
        )],
    ));
    // A sendmail that keeps its arguments and the message.
    let fake = t.path().join("sendmail");
    let got = t.path().join("message");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {0}.args\ncat > {0}\n",
            got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spool = s.dir.to_str().unwrap().to_owned();
    let base = win();
    let o = run(&args(
        &base,
        &[
            "summary",
            "--spool",
            &spool,
            "--mail-to",
            "postmaster@example.com",
            "--mail-from",
            "tlsrpt@example.com",
            "--sendmail",
            fake.to_str().unwrap(),
        ],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "a digest prints nothing");
    let argv = std::fs::read_to_string(format!("{}.args", got.display())).unwrap();
    assert_eq!(argv.trim(), "-t -i -f tlsrpt@example.com");
    let m = std::fs::read_to_string(&got).unwrap();
    assert!(
        m.contains("To: postmaster@example.com\n") && m.contains("From: tlsrpt@example.com\n"),
        "{m}"
    );
    assert!(
        m.contains("Subject: TLS report digest: 10 failed sessions in 1 of 1 domains"),
        "{m}"
    );
    assert!(
        m.contains("Content-Type: multipart/alternative; boundary="),
        "{m}"
    );
    assert!(
        m.contains("Content-Type: text/plain; charset=utf-8")
            && m.contains("Content-Type: text/html; charset=utf-8"),
        "{m}"
    );
    assert!(
        m.contains("example.com: 10 failed of 100 sessions (10.00%)"),
        "{m}"
    );
    assert!(
        m.lines().all(|l| l.len() <= 998),
        "a line over SMTP's limit"
    );
    // Header injection through an address is refused (bad argument, exit 2).
    let o = run(&args(
        &base,
        &[
            "summary",
            "--spool",
            &spool,
            "--mail-to",
            "a@example.com\nBcc: x@evil.example",
            "--sendmail",
            fake.to_str().unwrap(),
        ],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // sendmail failing is exit 1.
    let o = run(&args(
        &base,
        &[
            "summary",
            "--spool",
            &spool,
            "--mail-to",
            "postmaster@example.com",
            "--sendmail",
            "/bin/false",
        ],
    ));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("/bin/false failed"), "{}", stderr(&o));
}

/// `--since 30d --until D` is the 30 days before D; a domain without a previous window is
/// `new`, not a change from zero; counts say "1 report"; an empty window says what the
/// spool holds and which --since would show it.
#[test]
fn window_wording_and_empty_windows() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    // One report ending T0 + 5 days.
    s.put(&record(
        "Google Inc.",
        "w-1",
        T0 + 4 * DAY,
        T0 + 5 * DAY + 10,
        true,
        vec![policy(
            "sts",
            "example.com",
            10,
            2,
            vec![detail(
                "certificate-expired",
                2,
                "203.0.113.1",
                "mx1.example.com",
            )],
        )],
    ));
    let spool = s.dir.to_str().unwrap().to_owned();
    let until = iso(T0 + 6 * DAY);
    let doc = summary_json(&["--spool", &spool, "--since", "3d", "--until", &until]);
    assert_eq!(
        doc["window"]["since"],
        iso(T0 + 3 * DAY),
        "a duration counts back from --until"
    );
    assert_eq!(doc["window"]["until"], until);
    assert_eq!(doc["domains"][0]["reports"], 1);
    let o = run(&[
        "summary", "--spool", &spool, "--since", "3d", "--until", &until, "--color", "never",
    ]);
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.starts_with("example.com "))
        .expect(&text);
    assert!(
        row.contains(" new "),
        "vs PREV of a domain without a previous window: {row}"
    );
    assert!(text.contains("in 1 report from 1 organisation"), "{text}");
    assert!(!text.contains("1 reports"), "{text}");
    assert!(
        text.contains("certificate-expired") && text.contains("2 sessions in 1 report"),
        "{text}"
    );
    assert!(
        text.contains("at MX:") && text.contains("mx1.example.com 2"),
        "{text}"
    );
    // A window before any report: what the spool holds, and a --since that shows it.
    let early = iso(T0 + 2 * DAY);
    let o = run(&[
        "summary", "--spool", &spool, "--since", "1d", "--until", &early,
    ]);
    let text = stdout(&o);
    assert!(
        text.contains("No authenticated reports in this window."),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "The spools hold 1 report; the latest ended {}, after this window",
            iso(T0 + 5 * DAY)
        )),
        "{text}"
    );
    // From now, the latest ended long ago: the suggestion reaches back to it.
    let o = run(&[
        "summary", "--spool", &spool, "--since", "1d", "--format", "json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let since = doc["empty-window"]["suggested-since"]
        .as_str()
        .unwrap()
        .trim_end_matches('d')
        .parse::<i64>()
        .unwrap();
    let back = tlsrpt_pipe::datetime::Timestamp::now().0 - since * DAY;
    assert!(
        back <= T0 + 5 * DAY,
        "--since {since}d does not reach the latest report"
    );
    let o = run(&[
        "summary",
        "--spool",
        &spool,
        "--since",
        &format!("{since}d"),
    ]);
    assert!(
        stdout(&o).contains("example.com"),
        "the suggested --since shows the report"
    );
}
