//! `tlsrpt doctor` on a real set-up in the disposable root: the world's Postfix (and DNS)
//! wired by the contrib snippets verbatim (master.cf service, main.cf lines, transport
//! map; only the paths changed to this build's binary and a temporary spool), a report
//! stored, the metrics job and a database as the contrib jobs leave them: everything ok.
//! Then each piece broken in turn, each named with its fix: the spool not writable, the
//! transport entry missing, a record missing, reports not trusted, the metrics textfile
//! stale, the database down. #[ignore]d on the host (tests/run.sh runs it in the root,
//! where it may write /etc/postfix).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::world::world;
use common::*;
use serde_json::Value;

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// The items of a doctor run: (exit status, [(area, level, text, fix)]).
fn doctor(args: &[&str]) -> (i32, Vec<(String, String, String, String)>) {
    let mut a = vec!["doctor", "--format", "json", "--nameserver", "127.0.0.1"];
    a.extend_from_slice(args);
    let o = run(&a);
    let doc: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor: not JSON ({e}): {}{}", stdout(&o), stderr(&o)));
    let status = o.status.code().unwrap();
    assert_eq!(doc["status"], status);
    let items = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["area"].as_str().unwrap().to_owned(),
                i["level"].as_str().unwrap().to_owned(),
                i["text"].as_str().unwrap().to_owned(),
                i["fix"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (status, items)
}

fn not_ok(items: &[(String, String, String, String)]) -> Vec<&(String, String, String, String)> {
    items.iter().filter(|i| i.1 != "ok").collect()
}

/// The one item that is not ok, which must be of `area` and `level`, its text holding
/// `text` and its fix `fix`.
fn only_problem(
    items: &[(String, String, String, String)],
    area: &str,
    level: &str,
    text: &str,
    fix: &str,
) {
    let bad = not_ok(items);
    assert_eq!(bad.len(), 1, "{bad:#?}");
    let (a, l, t, f) = bad[0];
    assert_eq!((a.as_str(), l.as_str()), (area, level), "{bad:#?}");
    assert!(t.contains(text), "{t}");
    assert!(f.contains(fix), "{f}");
}

#[test]
#[ignore = "needs the probe world (Postfix, NSD, unbound) and root"]
fn doctor_on_a_wired_postfix_then_each_piece_broken() {
    let w = world();
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/postfix");
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sh(
        "getent passwd tlsrpt >/dev/null || useradd --system --user-group --no-create-home --home-dir /nonexistent tlsrpt",
    );
    let spool = Spool::new(t.path(), "spool");
    let data = t.path().join("lib");
    std::fs::create_dir(&data).unwrap();
    let spool_s = spool.dir.to_str().unwrap().to_owned();
    let pipe = pipe_bin();

    // ---- Postfix, wired by the snippets ---------------------------------------------
    let master = std::fs::read_to_string(contrib.join("master.cf"))
        .unwrap()
        .replace("/usr/bin/tlsrpt-pipe", pipe.to_str().unwrap())
        .replace("/var/spool/tlsrpt", &spool_s);
    let main = std::fs::read_to_string(contrib.join("main.cf")).unwrap();
    let transport = std::fs::read_to_string(contrib.join("transport"))
        .unwrap()
        .replace("tls-reports@example.com", "tls-reports@good.plain.test");
    let mut m = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
    m.push_str(&master);
    std::fs::write("/etc/postfix/master.cf", m).unwrap();
    let mut mc = std::fs::read_to_string("/etc/postfix/main.cf").unwrap();
    mc.push_str(&main);
    std::fs::write("/etc/postfix/main.cf", mc).unwrap();
    std::fs::write("/etc/postfix/transport", &transport).unwrap();
    sh("postmap /etc/postfix/transport");

    // ---- a report, the jobs --------------------------------------------------------
    let day = now() - now() % DAY - DAY;
    spool.put(&record(
        "Google Inc.",
        "doctor-1",
        day,
        day + DAY + 60,
        true,
        vec![policy("sts", "good.plain.test", 50, 0, vec![])],
    ));
    let textfile = t.path().join("tlsrpt.prom");
    let db = format!("sqlite://{}/tlsrpt.db", data.display());
    for args in [
        vec![
            "metrics",
            "--spool",
            &spool_s,
            "--textfile",
            textfile.to_str().unwrap(),
        ],
        vec!["load", "--spool", &spool_s, "--db", &db],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let cron = t.path().join("cron.d");
    std::fs::create_dir(&cron).unwrap();
    let packaged =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/cron.d"))
            .unwrap();
    std::fs::write(
        cron.join("tlsrpt"),
        packaged.replace(
            "#*/5 * * * *  tlsrpt  /usr/bin/tlsrpt load",
            "*/5 * * * *  tlsrpt  /usr/bin/tlsrpt load",
        ),
    )
    .unwrap();
    sh(&format!(
        "chown -R tlsrpt:tlsrpt {spool_s} {}",
        data.display()
    ));
    sh(&format!("chmod 0750 {spool_s} {}", data.display()));

    let base: Vec<String> = [
        "--spool",
        &spool_s,
        "--textfile",
        textfile.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--cron-dir",
        cron.to_str().unwrap(),
        "--aliases",
        t.path().join("no-aliases").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
        if !extra.contains(&"--db") {
            a.extend(["--db", &db]);
        }
        a.extend_from_slice(extra);
        doctor(&a)
    };
    let good = ["--domain", "good.plain.test"];

    // ---- all ok ----------------------------------------------------------------------
    let (st, items) = with(&good);
    assert_eq!(
        not_ok(&items),
        Vec::<&(String, String, String, String)>::new()
    );
    assert_eq!(st, 0);
    let has = |area: &str, text: &str| items.iter().any(|i| i.0 == area && i.2.contains(text));
    assert!(
        has("mta", "Postfix service tlsrpt (master.cf) runs"),
        "{items:#?}"
    );
    assert!(
        has(
            "route",
            "routes tls-reports@good.plain.test to Postfix service tlsrpt"
        ),
        "{items:#?}"
    );
    assert!(has("record", "_smtp._tls.good.plain.test"), "{items:#?}");
    assert!(has("reports", "good.plain.test: 1 report(s)"), "{items:#?}");
    assert!(has("trust", "all 1 report(s)"), "{items:#?}");
    assert!(has("database", "reachable"), "{items:#?}");
    assert!(has("jobs", "tlsrpt metrics ran"), "{items:#?}");
    assert!(has("jobs", "enabled: load (cron"), "{items:#?}");
    let text = run(&[
        &["doctor", "--nameserver", "127.0.0.1"][..],
        &base.iter().map(String::as_str).collect::<Vec<_>>(),
        &good,
    ]
    .concat());
    assert!(
        stdout(&text)
            .lines()
            .last()
            .unwrap()
            .starts_with("doctor: "),
        "{}",
        stdout(&text)
    );

    // ---- the spool not writable by the delivery's user -------------------------------
    std::fs::set_permissions(&spool.dir, std::fs::Permissions::from_mode(0o550)).unwrap();
    let (st, items) = with(&good);
    only_problem(
        &items,
        "spool",
        "error",
        "is not writable by tlsrpt",
        "chmod 0750",
    );
    assert_eq!(st, 2);
    std::fs::set_permissions(&spool.dir, std::fs::Permissions::from_mode(0o750)).unwrap();

    // ---- the transport entry missing -------------------------------------------------
    std::fs::write("/etc/postfix/transport", "").unwrap();
    sh("postmap /etc/postfix/transport");
    let (st, items) = with(&good);
    only_problem(
        &items,
        "route",
        "error",
        "no rua address of its record reaches tlsrpt-pipe here",
        "/etc/postfix/transport",
    );
    assert_eq!(st, 2);
    std::fs::write("/etc/postfix/transport", &transport).unwrap();
    sh("postmap /etc/postfix/transport");

    // ---- a domain without a record ---------------------------------------------------
    let (st, items) = with(&["--domain", "norecord.plain.test"]);
    let bad = not_ok(&items);
    assert!(
        bad.iter().any(|i| i.0 == "record"
            && i.1 == "error"
            && i.3.contains("tlsrpt check-record norecord.plain.test")),
        "{bad:#?}"
    );
    assert!(
        bad.iter()
            .any(|i| i.0 == "reports" && i.2.contains("norecord.plain.test: no report")),
        "{bad:#?}"
    );
    assert_eq!(st, 2);

    // ---- reports not trusted ---------------------------------------------------------
    spool.put(&with_untrusted_pass(
        record(
            "Microsoft Corporation",
            "doctor-2",
            day,
            day + DAY + 120,
            false,
            vec![policy("sts", "good.plain.test", 10, 3, vec![])],
        ),
        "mx.plain.test",
    ));
    sh(&format!("chown -R tlsrpt:tlsrpt {spool_s}"));
    let (st, items) = with(&good);
    only_problem(
        &items,
        "trust",
        "warning",
        "dkim=pass from mx.plain.test",
        "--trusted-authserv-id mx.plain.test",
    );
    assert_eq!(st, 1);
    // Trusted now by the operator, but not by the delivery: said too.
    let (_, items) = with(&[
        "--domain",
        "good.plain.test",
        "--trusted-authserv-id",
        "mx.plain.test",
    ]);
    only_problem(
        &items,
        "trust",
        "warning",
        "runs tlsrpt-pipe without --trusted-authserv-id mx.plain.test",
        "add --trusted-authserv-id mx.plain.test",
    );
    let trusted = [
        "--domain",
        "good.plain.test",
        "--trusted-authserv-id",
        "mx.plain.test",
    ];

    // ---- the metrics job stopped -----------------------------------------------------
    let hb = t.path().join("tlsrpt.run.prom");
    let fresh = std::fs::read_to_string(&hb).unwrap();
    std::fs::write(
        &hb,
        format!(
            "tlsrpt_metrics_last_run_timestamp_seconds {}\n",
            now() - 3 * 3600
        ),
    )
    .unwrap();
    let (st, items) = with(&trusted);
    let bad = not_ok(&items);
    assert!(
        bad.iter().any(|i| i.0 == "jobs"
            && i.1 == "warning"
            && i.2.contains("tlsrpt metrics last ran 3 h ago")),
        "{bad:#?}"
    );
    assert_eq!(st, 1);
    std::fs::write(&hb, fresh).unwrap();

    // ---- the database down -----------------------------------------------------------
    let mut down: Vec<&str> = trusted.to_vec();
    down.extend(["--db", "postgresql://tlsrpt@127.0.0.1:1/tlsrpt"]);
    let (st, items) = with(&down);
    let bad = not_ok(&items);
    assert!(
        bad.iter().any(|i| i.0 == "database"
            && i.1 == "error"
            && i.3.contains("start the database server")),
        "{bad:#?}"
    );
    assert_eq!(st, 2);
    let _ = w;
}

/// Off the root: a spool that does not exist is an error with the command that makes
/// it, never "not checked"; exit 2.
#[test]
fn a_missing_spool_is_an_error_with_its_fix() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("spool");
    let o = run(&[
        "doctor",
        "--spool",
        missing.to_str().unwrap(),
        "--data-dir",
        t.path().to_str().unwrap(),
        "--cron-dir",
        t.path().to_str().unwrap(),
        "--aliases",
        t.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with("error    spool: ")
            && l.contains("does not exist")
            && l.contains("fix: install -d -o tlsrpt -g tlsrpt -m 0750")),
        "{out}"
    );
    assert!(!out.contains("unknown  spool"), "{out}");
    // An empty spool: nothing judged is said, never "ok".
    std::fs::create_dir(&missing).unwrap();
    let o = run(&[
        "doctor",
        "--spool",
        missing.to_str().unwrap(),
        "--data-dir",
        t.path().to_str().unwrap(),
        "--cron-dir",
        t.path().to_str().unwrap(),
        "--aliases",
        t.path().join("none").to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("warning  trust: no report in the spools")),
        "{out}"
    );
    assert!(o.status.code().unwrap() >= 1, "{out}");
}
