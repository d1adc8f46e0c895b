//! `tlsrpt prune` on temporary spools, with the real binaries: the dry run changes
//! nothing and lists exactly what goes; a real run removes exactly the old day files,
//! quarantined messages and duplicate markers; `--db` keeps what is not (completely)
//! loaded and forgets the checkpoints of what goes, so later loads neither reload nor
//! miss anything; deliveries by the real tlsrpt-pipe running during prunes lose
//! nothing; bad arguments exit 2.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::Value;

/// The user the tests run the binaries as when they run as root (tlsrpt-pipe refuses
/// root, and prune refuses a spool root does not own).
const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn today() -> i64 {
    now().div_euclid(DAY) * DAY
}

/// A record received `days_ago` days ago (at 01:00), for a daily report ending at
/// `ends_days_ago` days ago (00:00).
fn rec(id: &str, days_ago: i64, ends_days_ago: i64) -> Value {
    let start = today() - (ends_days_ago + 1) * DAY;
    record(
        "Google Inc.",
        id,
        start,
        today() - days_ago * DAY + 3600,
        true,
        vec![policy("sts", "example.com", 10, 0, vec![])],
    )
}

fn prune(args: &[&str]) -> Output {
    prune_as(args, None)
}

fn prune_as(args: &[&str], uid: Option<u32>) -> Output {
    let mut c = Command::new(BIN);
    c.arg("prune")
        .args(args)
        .env_remove("TLSRPT_SPOOL")
        .env_remove("TLSRPT_DB")
        .stdin(Stdio::null());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    c.output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Sets a file's modification time to `days` days ago.
fn age(p: &Path, days: i64) {
    let f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs((days * DAY) as u64))
        .unwrap();
}

fn write(p: &Path, bytes: &[u8], days_old: i64) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    age(p, days_old);
}

/// Everything under `dir` (not following links): path → (type, length, mtime, inode).
fn listing(dir: &Path) -> Listing {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = if m.is_dir() {
                todo.push(p.clone());
                "dir"
            } else if m.is_symlink() {
                "symlink"
            } else {
                "file"
            };
            out.insert(
                p,
                (kind.to_owned(), m.len(), m.mtime(), m.mtime_nsec(), m.ino()),
            );
        }
    }
    out
}

type Listing = BTreeMap<PathBuf, (String, u64, i64, i64, u64)>;

/// A listing without directories' times and sizes (removing changes them).
fn files(mut l: Listing) -> Listing {
    for v in l.values_mut() {
        if v.0 == "dir" {
            (v.1, v.2, v.3) = (0, 0, 0);
        }
    }
    l
}

fn key(prefix: &str, n: u32) -> String {
    format!("{prefix}{n:062x}")
}

/// A spool with things to go and things to stay; returns (spool, what goes as
/// (path, bytes), one outside file a symlink points at).
struct Fixture {
    _t: tempfile::TempDir,
    spool: PathBuf,
    goes: Vec<(PathBuf, u64)>,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let sp = Spool::new(t.path(), "spool");
    let mut goes = Vec::new();
    // Old day files (received 45 and 40 days ago, reports ended before): go.
    sp.put(&rec("old-1", 45, 46));
    sp.put(&rec("old-2", 45, 46));
    sp.put(&rec("old-3", 40, 41));
    sp.append_raw(&day_name(today() - 40 * DAY), b"not a record\n");
    // One recent report among old ones in an old day file: stays.
    sp.put(&rec("old-4", 38, 39));
    sp.put(&rec("late-range", 38, 5));
    // Recent day files, and today's holding an old report: stay.
    sp.put(&rec("recent", 5, 6));
    sp.put(&rec("today", 0, 60));
    sp.put(&rec("yesterday", 1, 60));
    for d in [45, 40] {
        let p = sp.dir.join(day_name(today() - d * DAY));
        goes.push((p.clone(), std::fs::metadata(&p).unwrap().len()));
    }
    // Other names stay.
    write(&sp.dir.join("2020-01-01.jsonl.bak"), b"x\n", 400);
    write(&sp.dir.join("notes.txt"), b"x\n", 400);
    // A symlink named like an old day file, to a file outside: both stay.
    let outside = t.path().join("outside.jsonl");
    std::fs::write(&outside, format!("{}\n", rec("outside", 50, 51))).unwrap();
    std::os::unix::fs::symlink(&outside, sp.dir.join(day_name(today() - 50 * DAY))).unwrap();
    // Quarantine: an old pair and an old lone reason go; a recent pair, a pair with a
    // recent half, a temporary file and other names stay.
    let q = sp.dir.join("quarantine");
    for (name, bytes, days) in [
        (
            "20241001T000000Z.11.000000001.eml",
            &b"From: a\n\nold\n"[..],
            50,
        ),
        ("20241001T000000Z.11.000000001.json", b"{\"why\":1}\n", 50),
        ("20241002T000000Z.12.000000002.json", b"{}\n", 50),
    ] {
        let p = q.join(name);
        write(&p, bytes, days);
        goes.push((p, bytes.len() as u64));
    }
    write(&q.join("20261201T000000Z.13.000000003.eml"), b"new\n", 1);
    write(&q.join("20261201T000000Z.13.000000003.json"), b"{}\n", 1);
    write(&q.join("20241003T000000Z.14.000000004.eml"), b"old\n", 50);
    write(&q.join("20241003T000000Z.14.000000004.json"), b"{}\n", 3);
    write(&q.join(".20241004T000000Z.15.000000005.tmp"), b"tmp\n", 50);
    write(&q.join("README"), b"x\n", 50);
    // Duplicate markers: old ones go, recent ones and other names stay.
    let seen = sp.dir.join(".seen");
    for k in [key("ab", 1), key("ab", 2), key("cd", 3)] {
        let p = seen.join(&k[..2]).join(&k);
        write(&p, b"", 50);
        goes.push((p, 0));
    }
    write(&seen.join("ab").join(key("ab", 4)), b"", 1);
    write(&seen.join("ab").join("ab12"), b"", 50);
    write(&seen.join("ab").join(key("cd", 5)), b"", 50); // in the wrong fan-out directory
    write(&seen.join("xy").join(key("ab", 6)), b"", 50);
    goes.sort();
    Fixture {
        spool: sp.dir,
        _t: t,
        goes,
        outside,
    }
}

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

fn expected(verb: &str, goes: &[(PathBuf, u64)]) -> Vec<String> {
    let mut v: Vec<String> = goes
        .iter()
        .map(|(p, n)| format!("{verb} {} ({n} bytes)", p.display()))
        .collect();
    v.sort();
    v
}

fn sorted(v: Vec<&str>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn dry_run_changes_nothing_and_lists_what_would_go() {
    let f = fixture();
    let before = listing(&f.spool);
    let o = prune(&["--older-than", "30d", "--spool", s(&f.spool), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(listing(&f.spool), before, "the dry run changed the spool");
    assert!(!f.spool.join(".lock").exists());
    let out = stdout(&o);
    assert_eq!(
        sorted(lines_with(&out, "would remove /")),
        expected("would remove", &f.goes)
    );
    let total: u64 = f.goes.iter().map(|g| g.1).sum();
    assert_eq!(
        out.lines().last().unwrap(),
        format!(
            "would remove 2 day files, 2 quarantined messages, 3 duplicate markers: {total} bytes would be freed"
        )
    );
    let kept = lines_with(&out, "kept ");
    assert_eq!(kept.len(), 2, "{out}");
    assert!(
        kept.iter()
            .any(|l| l.contains(&day_name(today() - 38 * DAY)) && l.contains("after the cut")),
        "{out}"
    );
    assert!(
        kept.iter()
            .any(|l| l.contains(&day_name(today() - 50 * DAY)) && l.contains("not a regular file")),
        "{out}"
    );
    // Only those lines, without -v.
    assert_eq!(out.lines().count(), f.goes.len() + kept.len() + 1, "{out}");
}

#[test]
fn removes_exactly_what_is_old() {
    let f = fixture();
    let before = listing(&f.spool);
    let o = prune(&["--older-than", "30d", "--spool", s(&f.spool)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        sorted(lines_with(&out, "removed /")),
        expected("removed", &f.goes)
    );
    let total: u64 = f.goes.iter().map(|g| g.1).sum();
    assert!(
        out.ends_with(&format!(
            "removed 2 day files, 2 quarantined messages, 3 duplicate markers: {total} bytes freed\n"
        )),
        "{out}"
    );
    let mut after = files(listing(&f.spool));
    assert!(after.remove(&f.spool.join(".lock")).is_some());
    let mut want = files(before);
    for (p, _) in &f.goes {
        want.remove(p);
    }
    assert_eq!(after, want);
    assert!(f.outside.exists());
    // A second run finds nothing more.
    let o = prune(&["--older-than", "30d", "--spool", s(&f.spool)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with(
            "removed 0 day files, 0 quarantined messages, 0 duplicate markers: 0 bytes freed\n"
        ),
        "{}",
        stdout(&o)
    );
}

fn load(db: &str, spool: &Path) -> String {
    let o = Command::new(BIN)
        .args(["load", "-v", "--db", db, "--spool", s(spool)])
        .env_remove("TLSRPT_DB")
        .env_remove("TLSRPT_SPOOL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

fn checkpoints(db: &Path) -> BTreeMap<String, (i64, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT spool || '|' || file, inode, read_to FROM tlsrpt_checkpoint")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn reports(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM smtp_tls_report", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn db_guard_keeps_what_is_not_loaded_and_forgets_checkpoints() {
    let t = tempfile::tempdir().unwrap();
    let sp = Spool::new(t.path(), "spool");
    let dbp = t.path().join("t.db");
    let db = format!("sqlite://{}", dbp.display());
    let spool = s(&sp.dir).to_owned();
    let (f1, f2, f3) = (
        day_name(today() - 50 * DAY),
        day_name(today() - 45 * DAY),
        day_name(today() - 40 * DAY),
    );
    sp.put(&rec("a1", 50, 51));
    sp.put(&rec("a2", 50, 51));
    sp.put(&rec("b1", 45, 46));
    sp.put(&rec("r1", 3, 4));

    // No database yet: nothing is created, the run is deferred.
    let o = prune(&[
        "--older-than",
        "30d",
        "--spool",
        &spool,
        "--db",
        &db,
        "--keep-rows",
    ]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(!dbp.exists());

    load(&db, &sp.dir);
    // f2 loaded partially (a line appended after the load), f3 not at all.
    sp.put(&rec("b2", 45, 46));
    sp.put(&rec("c1", 40, 41));
    let key = |f: &str| format!("{spool}|{f}");
    let cps = checkpoints(&dbp);
    assert!(cps.contains_key(&key(&f1)) && cps.contains_key(&key(&f2)));

    // The dry run writes nothing either.
    let o = prune(&[
        "--older-than",
        "30d",
        "--spool",
        &spool,
        "--db",
        &db,
        "--keep-rows",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(checkpoints(&dbp), cps);
    let out = stdout(&o);
    assert_eq!(
        lines_with(&out, "would remove /"),
        vec![format!(
            "would remove {} ({} bytes)",
            sp.dir.join(&f1).display(),
            std::fs::metadata(sp.dir.join(&f1)).unwrap().len()
        )]
    );

    let o = prune(&[
        "--older-than",
        "30d",
        "--spool",
        &spool,
        "--db",
        &db,
        "--keep-rows",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!sp.dir.join(&f1).exists(), "{out}");
    assert!(sp.dir.join(&f2).exists() && sp.dir.join(&f3).exists());
    for f in [&f2, &f3] {
        let want = format!(
            "kept {}: not loaded yet into {db} (run: tlsrpt load --spool {spool} --db {db})",
            sp.dir.join(f).display()
        );
        assert!(out.contains(&want), "{out}");
    }
    let cps = checkpoints(&dbp);
    assert!(!cps.contains_key(&key(&f1)), "{cps:?}");
    assert!(cps.contains_key(&key(&f2)));

    // Loaded completely, they go too, with their checkpoints.
    let l = load(&db, &sp.dir);
    assert!(
        l.starts_with("loaded 2 new reports (0 already stored)"),
        "{l}"
    );
    let rows = reports(&dbp);
    assert_eq!(rows, 6);
    let o = prune(&[
        "--older-than",
        "30d",
        "--spool",
        &spool,
        "--db",
        &db,
        "--keep-rows",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!sp.dir.join(&f2).exists() && !sp.dir.join(&f3).exists());
    let cps = checkpoints(&dbp);
    assert_eq!(
        cps.keys().cloned().collect::<Vec<_>>(),
        vec![key(&day_name(today() - 3 * DAY))],
        "only the recent file's checkpoint stays"
    );

    // A load after the prune reloads nothing and misses nothing.
    let l = load(&db, &sp.dir);
    assert!(
        l.starts_with("loaded 0 new reports (0 already stored)"),
        "{l}"
    );
    sp.put(&rec("n1", 0, 1));
    sp.put(&rec("n2", 0, 1));
    sp.put(&rec("n3", 3, 4)); // appended to the recent day file
    let l = load(&db, &sp.dir);
    assert!(
        l.starts_with("loaded 3 new reports (0 already stored)"),
        "{l}"
    );
    assert_eq!(reports(&dbp), rows + 3);
    assert_eq!(reports(&dbp), 9);
}

#[test]
fn bad_arguments_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let sp = Spool::new(t.path(), "spool");
    sp.put(&rec("a", 50, 51));
    let spool = s(&sp.dir);
    let before = listing(&sp.dir);
    for (args, says) in [
        (vec!["--spool", spool], "--older-than"),
        (
            vec!["--older-than", "1d", "--spool", spool],
            "less than 2 days ago",
        ),
        (
            vec!["--older-than", "47h", "--spool", spool],
            "less than 2 days ago",
        ),
        (vec!["--older-than", "soon", "--spool", spool], "soon"),
        (vec!["--older-than", "30d"], "nothing to prune"),
        (
            vec!["--older-than", "30d", "--spool", spool, "--db", "mysql:x"],
            "--db",
        ),
    ] {
        let o = prune(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    // An RFC 3339 date is a cut too.
    let o = prune(&["--older-than", "2000-01-01T00:00:00Z", "--spool", spool]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("removed 0 day files"));
    if is_root() {
        // Root is refused a spool it does not own.
        std::os::unix::fs::chown(&sp.dir, Some(NOBODY), Some(NOBODY)).unwrap();
        let o = prune(&["--older-than", "30d", "--spool", spool]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("run as the spool's owner"));
    }
    let mut after = listing(&sp.dir);
    after.remove(&sp.dir.join(".lock"));
    assert_eq!(after, before);
}

#[test]
fn deliveries_during_prunes_lose_nothing() {
    let pipe = pipe_bin();
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sp = Spool::new(t.path(), "spool");
    let mut old = Vec::new();
    for d in 35..75 {
        for i in 0..3 {
            sp.put(&rec(&format!("old-{d}-{i}"), d, d + 1));
        }
        old.push(sp.dir.join(day_name(today() - d * DAY)));
    }
    // As root, both binaries run as nobody, who owns the spool.
    let uid = is_root().then_some(NOBODY);
    if let Some(u) = uid {
        for p in std::iter::once(sp.dir.clone()).chain(old.iter().cloned()) {
            std::os::unix::fs::chown(&p, Some(u), Some(u)).unwrap();
        }
    }
    const N: usize = 60;
    let spool = sp.dir.clone();
    let deliver = std::thread::spawn(move || {
        for i in 0..N {
            let report = rec(&format!("new-{i}"), 0, 1)["report"].clone();
            let mut c = Command::new(&pipe);
            c.arg("--spool").arg(&spool).arg("--log-stderr");
            if is_root() {
                c.args(["--user", "nobody"]);
            }
            let mut child = c
                .env_remove("TLSRPT_SPOOL")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(report.to_string().as_bytes())
                .unwrap();
            let o = child.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "delivery {i}: {}", stderr(&o));
        }
    });
    let mut runs: i64 = 0;
    loop {
        let done = deliver.is_finished();
        let o = prune_as(&["--older-than", "30d", "--spool", s(&sp.dir)], uid);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        runs += 1;
        if done {
            break;
        }
        // Another old day file for the next run to remove while deliveries go on.
        let p = sp.dir.join(day_name(today() - (100 + runs) * DAY));
        sp.append_raw(
            p.file_name().unwrap().to_str().unwrap(),
            format!(
                "{}\n",
                rec(&format!("older-{runs}"), 100 + runs, 101 + runs)
            )
            .as_bytes(),
        );
        if let Some(u) = uid {
            std::os::unix::fs::chown(&p, Some(u), Some(u)).unwrap();
        }
        old.push(p);
    }
    deliver.join().unwrap();
    eprintln!("{runs} prunes during {N} deliveries");
    assert!(runs >= 2, "the deliveries ended before a second prune");
    for p in &old {
        assert!(!p.exists(), "{} still there", p.display());
    }
    // Every delivered report is in the spool, once.
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&sp.dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                ids.push(v["report"]["report-id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("new-{i}")).collect();
    want.sort();
    assert_eq!(ids, want);
}
