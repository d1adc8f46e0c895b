//! One test per quirk in sender-quirks.md: real samples, plus edited copies of them
//! where the corpus has no real example. Each asserts the report is stored (or, for a
//! DMARC report, recognised as not a TLS report) and the deviation is recorded.

mod common;
use common::*;
use serde_json::{Value, json};

fn store_one(input: &[u8]) -> Value {
    let env = Env::new();
    let out = env.run(&[], input);
    let err = ok(&out);
    let recs = env.records();
    assert_eq!(recs.len(), 1, "stderr: {err}");
    assert!(env.quarantined().is_empty(), "quarantined: {err}");
    recs.into_iter().next().unwrap()
}

fn codes(rec: &Value) -> Vec<String> {
    rec["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

fn rfc_json() -> Vec<u8> {
    fixture("stalwartlabs_mail-auth/rpt01.json")
}

fn rfc_gz() -> Vec<u8> {
    gzip(&rfc_json())
}

const REPORT_ID: &str = "5065427c-23d3-47ca-b6e0-946ea0e8c4be";

// --- MIME ------------------------------------------------------------------------

#[test]
fn content_types_seen_in_the_wild() {
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "application/tlsrpt+gzip",
            "attachment; filename=\"r.json.gz\"",
            rfc_gz(),
        ),
        (
            "application/tlsrpt+json",
            "attachment; filename=\"r.json\"",
            rfc_json(),
        ),
        ("application/tlsrpt", "attachment", rfc_json()),
        ("application/tlsrpt+x-gzip", "attachment", rfc_gz()),
        (
            "application/gzip",
            "attachment; filename=\"r.json.gz\"",
            rfc_gz(),
        ),
        ("application/x-gzip", "attachment", rfc_gz()),
        ("application/json", "attachment", rfc_json()),
        (
            "application/octet-stream",
            "attachment; filename=\"a!b!1!2.json.gz\"",
            rfc_gz(),
        ),
        (
            "application/octet-stream",
            "attachment; filename=\"report.json\"",
            rfc_json(),
        ),
        (
            "application/zip",
            "attachment; filename=\"r.zip\"",
            zip_stored("r.json", &rfc_json()),
        ),
        (
            "application/x-zip-compressed",
            "attachment",
            zip_stored("r.json.gz", &rfc_gz()),
        ),
        // No useful type at all: only the bytes (gzip magic) and a name tell.
        (
            "application/unknown",
            "attachment; filename=\"x.gz\"",
            rfc_gz(),
        ),
    ];
    for (ct, disp, data) in cases {
        let msg = report_message(
            "",
            &[text_part("human readable"), attachment(ct, disp, &data)],
        );
        let rec = store_one(&msg);
        assert_eq!(rec["report"]["report-id"], REPORT_ID, "{ct}");
    }
}

#[test]
fn declared_gzip_holding_plain_json() {
    let msg = report_message(
        "",
        &[attachment(
            "application/tlsrpt+gzip",
            "attachment",
            &rfc_json(),
        )],
    );
    let rec = store_one(&msg);
    assert!(codes(&rec).contains(&"declared-gzip-holds-json".to_owned()));
    assert_eq!(rec["source"]["encoding"], json!(["json"]));
}

#[test]
fn inline_json_without_transfer_encoding() {
    // Real hand-made sample: application/tlsrpt, no CTE, JSON in the body.
    let rec = store_one(&fixture("stalwartlabs_mail-auth/rpt02.eml"));
    assert_eq!(rec["source"]["content-type"], "application/tlsrpt");
}

#[test]
fn missing_closing_boundary() {
    let raw = String::from_utf8(fixture("mjl-_mox/example.eml")).unwrap();
    let cut = raw.replace("--000000000000f47cb005e8c8905b--", "");
    assert_ne!(raw, cut);
    let rec = store_one(cut.as_bytes());
    assert_eq!(rec["report"]["organization-name"], "Google Inc.");
}

#[test]
fn whole_body_is_the_report() {
    for (headers, body) in [
        (
            "Content-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n",
            base64(&rfc_gz()),
        ),
        (
            "Content-Type: application/tlsrpt+json\n",
            String::from_utf8(rfc_json()).unwrap(),
        ),
        (
            "Content-Type: text/plain\n",
            String::from_utf8(rfc_json()).unwrap(),
        ),
    ] {
        let msg =
            format!("From: a@b.example\nSubject: report\nMIME-Version: 1.0\n{headers}\n{body}\n");
        let rec = store_one(msg.as_bytes());
        assert_eq!(rec["source"]["part"], "body");
    }
}

#[test]
fn rfc2231_filename_continuations() {
    let p = Part {
        headers: "Content-Type: application/octet-stream\nContent-Disposition: attachment;\n filename*0=\"google.com!example.com!1667520000!\";\n filename*1=\"1667606399.json.gz\"\nContent-Transfer-Encoding: base64\n".into(),
        body: base64(&rfc_gz()),
    };
    let rec = store_one(&report_message("", &[p]));
    assert_eq!(
        rec["source"]["filename"],
        "google.com!example.com!1667520000!1667606399.json.gz"
    );
}

#[test]
fn trailing_crlf_after_gzip() {
    let mut data = rfc_gz();
    data.extend_from_slice(b"\r\n");
    let rec = store_one(&report_message(
        "",
        &[attachment("application/tlsrpt+gzip", "attachment", &data)],
    ));
    assert!(codes(&rec).contains(&"gzip-trailing-bytes".to_owned()));
}

#[test]
fn mbox_from_line_and_mbox_headers() {
    let mut raw = b"From MAILER-DAEMON Fri Feb  3 05:09:22 2023\n".to_vec();
    raw.extend(fixture("opus-codium_email-report-processor/report.elm.eml"));
    let rec = store_one(&raw);
    assert_eq!(rec["report"]["organization-name"], "Google Inc.");
}

#[test]
fn crlf_and_lf_line_endings() {
    let crlf = fixture("mjl-_mox/example.eml");
    assert!(crlf.windows(2).any(|w| w == b"\r\n"));
    let lf: Vec<u8> = String::from_utf8(crlf.clone())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    let a = store_one(&crlf);
    let b = store_one(&lf);
    assert_eq!(a["report"], b["report"]);
    let lf2 = fixture("isseis_tlsrpt-digest/tlsrpt_failure.eml");
    let crlf2 = String::from_utf8(lf2.clone())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    assert_eq!(store_one(&lf2)["report"], store_one(&crlf2)["report"]);
}

#[test]
fn dmarc_report_is_not_a_tls_report() {
    let xml = b"<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name></report_metadata></feedback>";
    for (ct, name, data) in [
        (
            "application/gzip",
            "google.com!example.com!1!2.xml.gz",
            gzip(xml),
        ),
        (
            "application/zip",
            "google.com!example.com!1!2.zip",
            zip_stored("r.xml", xml),
        ),
        ("text/xml", "r.xml", xml.to_vec()),
    ] {
        let msg = format!(
            "From: noreply-dmarc-support@google.com\nSubject: Report domain: example.com Submitter: google.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: {ct}; name=\"{name}\"\nContent-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
            base64(&data)
        );
        let env = Env::new();
        let err = ok(&env.run(&[], msg.as_bytes()));
        assert!(
            err.contains("status=no-report") && err.contains("DMARC"),
            "{ct}: {err}"
        );
        assert!(env.records().is_empty() && env.quarantined().is_empty());
    }
}

#[test]
fn ordinary_mail_is_no_report_and_can_be_kept() {
    let msg = b"From: someone@example.org\nSubject: hello\n\nJust saying hi.\n";
    let env = Env::new();
    let err = ok(&env.run(&[], msg));
    assert!(err.contains("status=no-report"), "{err}");
    assert!(env.quarantined().is_empty());
    ok(&env.run(&["--keep-unrecognized"], msg));
    let q = env.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, msg);
    assert_eq!(q[0].1["reason"], "no TLS report in message");
}

#[test]
fn report_forwarded_as_message_rfc822() {
    let inner = fixture("mjl-_mox/microsoft.eml");
    let outer = format!(
        "From: postmaster@example.com\nSubject: Fwd: TLS report\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"fw\"\n\n--fw\nContent-Type: text/plain\n\nSee attached.\n--fw\nContent-Type: message/rfc822\n\n{}\n--fw--\n",
        String::from_utf8(inner).unwrap()
    );
    let rec = store_one(outer.as_bytes());
    assert_eq!(rec["report"]["organization-name"], "Microsoft Corporation");
    assert_eq!(rec["source"]["part"], "2.2");
}

#[test]
fn several_reports_in_one_message() {
    let a = report_json("Org A", "id-a", 0, "");
    let b = report_json("Org B", "id-b", 0, "");
    let msg = report_message(
        "",
        &[
            text_part("two reports"),
            attachment("application/tlsrpt+gzip", "attachment", &gzip(a.as_bytes())),
            attachment("application/tlsrpt+json", "attachment", b.as_bytes()),
            attachment(
                "application/zip",
                "attachment",
                &zip_stored("c.json", &rfc_json()),
            ),
        ],
    );
    let env = Env::new();
    let err = ok(&env.run(&[], &msg));
    let ids: Vec<Value> = env
        .records()
        .iter()
        .map(|r| r["report"]["report-id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("id-a"), json!("id-b"), json!(REPORT_ID)],
        "{err}"
    );
    assert!(err.contains("records=3"), "{err}");
}

#[test]
fn one_broken_report_does_not_lose_the_good_one() {
    let good = report_json("Org A", "id-a", 0, "");
    let mut bad = gzip(b"{\"x\":1}");
    bad.truncate(15);
    let msg = report_message(
        "",
        &[
            attachment("application/tlsrpt+json", "attachment", good.as_bytes()),
            attachment("application/tlsrpt+gzip", "attachment", &bad),
        ],
    );
    let env = Env::new();
    let err = ok(&env.run(&[], &msg));
    assert_eq!(env.records().len(), 1, "{err}");
    let q = env.quarantined();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].1["reason"]
            .as_str()
            .unwrap()
            .contains("part 2: broken gzip"),
        "{}",
        q[0].1
    );
}

// --- JSON ------------------------------------------------------------------------

fn edited(f: impl Fn(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&rfc_json()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn json_quirks_are_kept_and_recorded() {
    type Edit = Box<dyn Fn(&mut Value)>;
    type Check = Box<dyn Fn(&Value)>;
    let cases: Vec<(&str, Edit, Check)> = vec![
        (
            "end-before-start",
            Box::new(|v| v["date-range"]["end-datetime"] = json!("2016-03-31T00:00:00Z")),
            Box::new(|r| assert_eq!(r["date-range"]["end-datetime"], "2016-03-31T00:00:00Z")),
        ),
        (
            "mx-host-empty-array",
            Box::new(|v| v["policies"][0]["policy"]["mx-host"] = json!([])),
            Box::new(|r| assert_eq!(r["policies"][0]["policy"]["mx-host"], json!([]))),
        ),
        (
            "legacy-keys",
            Box::new(|v| {
                let d = &mut v["policies"][0]["failure-details"][0];
                let o = d.as_object_mut().unwrap();
                let host = o.remove("receiving-mx-hostname").unwrap();
                o.insert("receiving-mx-host-name".into(), host);
                o.insert(
                    "additional-info-uri".into(),
                    json!("https://reports.example/info"),
                );
            }),
            Box::new(|r| {
                let d = &r["policies"][0]["failure-details"][0];
                assert_eq!(d["receiving-mx-hostname"], "mx1.mail.company-y.example");
                assert_eq!(d["additional-information"], "https://reports.example/info");
                assert!(d.get("receiving-mx-host-name").is_none());
            }),
        ),
        (
            "unknown-result-type",
            Box::new(|v| {
                v["policies"][0]["failure-details"][0]["result-type"] = json!("quantum-decoherence")
            }),
            Box::new(|r| {
                assert_eq!(
                    r["policies"][0]["failure-details"][0]["result-type"],
                    "quantum-decoherence"
                )
            }),
        ),
        (
            "three-policies",
            Box::new(|v| {
                let p = v["policies"][0].clone();
                v["policies"].as_array_mut().unwrap().extend([p.clone(), p]);
            }),
            Box::new(|r| assert_eq!(r["policies"].as_array().unwrap().len(), 3)),
        ),
        (
            "helo-with-crlf",
            Box::new(|v| {
                v["policies"][0]["failure-details"][0]["receiving-mx-helo"] =
                    json!("mx1 ESMTP\r\n250-PIPELINING\r\n250 STARTTLS")
            }),
            Box::new(|r| {
                assert_eq!(
                    r["policies"][0]["failure-details"][0]["receiving-mx-helo"],
                    "mx1 ESMTP\r\n250-PIPELINING\r\n250 STARTTLS"
                )
            }),
        ),
        (
            "unknown-top-level-field",
            Box::new(|v| v["x-vendor"] = json!({"k": [1, 2]})),
            Box::new(|r| assert_eq!(r["x-vendor"], json!({"k": [1, 2]}))),
        ),
        (
            "numeric-string-count",
            Box::new(|v| {
                v["policies"][0]["summary"]["total-successful-session-count"] = json!("5326")
            }),
            Box::new(|r| {
                assert_eq!(
                    r["policies"][0]["summary"]["total-successful-session-count"],
                    5326
                )
            }),
        ),
    ];
    let want_code = [
        "date-range-reversed",
        "",
        "legacy-key",
        "unknown-result-type",
        "",
        "",
        "",
        "count-as-string",
    ];
    for ((name, edit, check), code) in cases.into_iter().zip(want_code) {
        let rec = store_one(&edited(edit));
        check(&rec["report"]);
        if !code.is_empty() {
            assert!(
                codes(&rec).contains(&code.to_owned()),
                "{name}: {:?}",
                codes(&rec)
            );
        }
    }
}

#[test]
fn json_layout_quirks() {
    // Leading space, CRLF inside, BOM, no trailing newline.
    let base = String::from_utf8(rfc_json()).unwrap();
    for doc in [
        format!("  {base}"),
        base.replace('\n', "\r\n"),
        format!("\u{FEFF}{base}"),
        base.trim_end().to_owned(),
    ] {
        let rec = store_one(doc.as_bytes());
        assert_eq!(rec["report"]["report-id"], REPORT_ID);
    }
}

/// A zip archive with one stored (uncompressed) entry: what `zip -0` writes.
fn zip_stored(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let mut z = Vec::new();
    let n = name.len() as u16;
    let sz = data.len() as u32;
    z.extend(b"PK\x03\x04");
    z.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend(crc.to_le_bytes());
    z.extend(sz.to_le_bytes());
    z.extend(sz.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend([0, 0]);
    z.extend(name.as_bytes());
    z.extend(data);
    let cd = z.len() as u32;
    z.extend(b"PK\x01\x02");
    z.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend(crc.to_le_bytes());
    z.extend(sz.to_le_bytes());
    z.extend(sz.to_le_bytes());
    z.extend(n.to_le_bytes());
    z.extend([0u8; 12]);
    z.extend(0u32.to_le_bytes());
    z.extend(name.as_bytes());
    let cdlen = z.len() as u32 - cd;
    z.extend(b"PK\x05\x06");
    z.extend([0, 0, 0, 0, 1, 0, 1, 0]);
    z.extend(cdlen.to_le_bytes());
    z.extend(cd.to_le_bytes());
    z.extend([0, 0]);
    z
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}
