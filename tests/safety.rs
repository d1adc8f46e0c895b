//! Nothing lost, nothing torn: concurrency, crashes at every step, resource faults,
//! filesystem attacks and privileges. Each test could fail if the guarantee broke.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

fn report(i: usize) -> Vec<u8> {
    let detail = format!(
        r#"{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.{}","receiving-mx-hostname":"mx1.example.com","failed-session-count":2}}"#,
        i % 250
    );
    report_json("Org", &format!("id-{i}"), 2, &detail).into_bytes()
}

fn ids(env: &Env) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in env.records() {
        *m.entry(r["report"]["report-id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    m
}

/// Raw check, independent of the helper: every line is complete JSON.
fn assert_no_partial_line(env: &Env) {
    for f in env.jsonl_files() {
        let b = std::fs::read(&f).unwrap();
        assert!(
            b.is_empty() || b.ends_with(b"\n"),
            "{} has a partial last line",
            f.display()
        );
        for line in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<Value>(line).unwrap_or_else(|e| panic!("torn line: {e}"));
        }
    }
}

#[test]
fn sixty_four_concurrent_deliveries() {
    let env = Env::new();
    // 24 distinct, 8 of them delivered 4 times in all (24 duplicates), 16 garbage.
    let mut inputs: Vec<Vec<u8>> = (0..24).map(report).collect();
    for i in 0..8 {
        for _ in 0..3 {
            inputs.push(report(i));
        }
    }
    for i in 0..16 {
        inputs.push(
            format!(
                "From: x@example.org\nSubject: junk {i}\n\n{}\n",
                "garbage ".repeat(i * 100)
            )
            .into_bytes(),
        );
    }
    assert_eq!(inputs.len(), 64);
    let children: Vec<_> = inputs
        .iter()
        .map(|_| {
            let mut c = env.cmd(&[]);
            c.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    // All 64 exist before any input is written: they really run at once.
    let mut waiting = Vec::new();
    for (mut ch, input) in children.into_iter().zip(&inputs) {
        let mut si = ch.stdin.take().unwrap();
        let data = input.clone();
        waiting.push((std::thread::spawn(move || si.write_all(&data)), ch));
    }
    for (w, ch) in waiting {
        w.join().unwrap().unwrap();
        let o = ch.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    assert_no_partial_line(&env);
    let got = ids(&env);
    assert_eq!(got.len(), 24, "every distinct report is stored");
    assert!(
        got.values().all(|&n| n == 1),
        "each stored exactly once: {got:?}"
    );
}

#[test]
fn killed_at_every_step_loses_nothing() {
    for point in [
        "after-lock",
        "mid-write",
        "after-write",
        "after-fsync",
        "after-mark",
    ] {
        let env = Env::new();
        ok(&env.run(&[], &report(1000))); // the day file exists and has content
        let big = {
            // Large enough that "mid-write" leaves a visible half line.
            let rows: Vec<String> = (0..2000)
                .map(|i| format!(r#"{{"result-type":"starttls-not-supported","receiving-ip":"198.51.100.{}","failed-session-count":1}}"#, i % 250))
                .collect();
            report_json("Org", "victim", 2000, &rows.join(",")).into_bytes()
        };
        let mut c = env.cmd(&[]);
        c.env("TLSRPT_PIPE_FAULT", point);
        let o = run_cmd(c, &big);
        assert_eq!(
            o.status.code(),
            None,
            "{point}: should have died by SIGKILL; {}",
            stderr(&o)
        );
        if point == "mid-write" {
            let f = &env.jsonl_files()[0];
            assert!(
                !std::fs::read(f).unwrap().ends_with(b"\n"),
                "mid-write left no partial line: the test would prove nothing"
            );
        }
        // The MTA saw a signal death, so it retries the same message.
        ok(&env.run(&[], &big));
        assert_no_partial_line(&env);
        let got = ids(&env);
        assert_eq!(
            got.get("id-1000"),
            Some(&1),
            "{point}: earlier record intact"
        );
        let n = got.get("victim").copied().unwrap_or(0);
        match point {
            // Durable but not yet marked: at-least-once may mean twice.
            // Written (in the page cache, which a process kill does not lose) but not yet
            // marked: at-least-once may mean twice.
            "after-write" | "after-fsync" => assert!((1..=2).contains(&n), "{point}: {n}"),
            _ => assert_eq!(n, 1, "{point}"),
        }
    }
}

#[test]
fn random_sigkill_then_redelivery_is_at_least_once() {
    let env = Env::new();
    let mut seed = 12345u64;
    for i in 0..40 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % 8000);
        let input = report(i);
        let mut c = env.cmd(&[]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut ch = c.spawn().unwrap();
        let mut si = ch.stdin.take().unwrap();
        let _ = si.write_all(&input);
        drop(si);
        std::thread::sleep(delay);
        let _ = ch.kill();
        let status = ch.wait().unwrap();
        if status.code() != Some(0) {
            ok(&env.run(&[], &input)); // the MTA retries anything but exit 0
        }
    }
    assert_no_partial_line(&env);
    let got = ids(&env);
    for i in 0..40 {
        let n = got.get(&format!("id-{i}")).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "id-{i} stored {n} times");
    }
}

#[test]
fn file_size_limit_rolls_back_and_defers() {
    // prlimit is util-linux's, essential on Debian: its absence is a failure.
    require_tool(&["/usr/bin/prlimit", "/bin/prlimit"], "util-linux");
    let env = Env::new();
    ok(&env.run(&[], &report(1)));
    let f = env.jsonl_files()[0].clone();
    let before = std::fs::read(&f).unwrap();
    let mut c = Command::new("prlimit");
    c.arg(format!("--fsize={}", before.len() + 100))
        .arg("--")
        .arg(BIN);
    c.args(env.cmd(&[]).get_args());
    let o = run_cmd(c, &report(2));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("File too large"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&f).unwrap(), before, "no partial record left");
    ok(&env.run(&[], &report(2)));
    assert_eq!(ids(&env).len(), 2);
}

#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn disk_full_rolls_back_and_defers() {
    require_root();
    let env = Env::new();
    let mnt = env.dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0755"])
        .arg("tmpfs")
        .arg(&mnt)
        .status();
    assert!(m.is_ok_and(|s| s.success()), "cannot mount a tmpfs here");
    let small = Env {
        dir: tempfile::tempdir().unwrap(),
        spool: mnt.join("spool"),
    };
    small.make_spool();
    ok(&small.run(&[], &report(1)));
    let before = std::fs::read(&small.jsonl_files()[0]).unwrap();
    // Fill the filesystem, leaving less than one record of room.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]);
    let rows: Vec<String> = (0..400)
        .map(|_| r#"{"result-type":"starttls-not-supported","failed-session-count":1}"#.to_owned())
        .collect();
    let big = report_json("Org", "big", 400, &rows.join(","));
    let o = small.run(&[], big.as_bytes());
    let _ = std::fs::remove_file(&filler);
    let after = std::fs::read(&small.jsonl_files()[0]).unwrap();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left"), "{}", stderr(&o));
    assert_eq!(after, before, "no partial record left");
}

#[test]
fn read_only_spool_file_defers() {
    let env = Env::new();
    ok(&env.run(&[], &report(1)));
    let f = env.jsonl_files()[0].clone();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o440)).unwrap();
    if is_root() {
        // nobody owns it, but mode 0440 still refuses nobody's write.
    }
    let o = env.run(&[], &report(2));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&env.run(&[], &report(2)));
    assert_eq!(ids(&env).len(), 2);
}

fn today_file(env: &Env) -> std::path::PathBuf {
    // Learn the day file's name from a throwaway delivery in a scratch spool.
    let scratch = Env::new();
    ok(&scratch.run(&[], &report(999)));
    env.spool
        .join(scratch.jsonl_files()[0].file_name().unwrap())
}

#[test]
fn planted_symlinks_are_not_followed() {
    let env = Env::new();
    let target = env.dir.path().join("target");
    std::fs::write(&target, b"precious\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
    let day = today_file(&env);
    for link in [day.clone(), env.spool.join(".lock")] {
        let _ = std::fs::remove_file(&link); // the attacker replaces what was there
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let o = env.run(&[], &report(1));
        assert_eq!(code(&o), 75, "{}: {}", link.display(), stderr(&o));
        assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
        assert_eq!(std::fs::read(&target).unwrap(), b"precious\n");
        std::fs::remove_file(&link).unwrap();
    }
    // Quarantine directory replaced by a symlink to a directory we must not write into.
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.spool.join("quarantine")).unwrap();
    let o = env.run(&[], &fixture("YnkDK_tls_reporting/truncated.gz"));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn hard_linked_spool_file_is_refused() {
    let env = Env::new();
    ok(&env.run(&[], &report(1)));
    let f = env.jsonl_files()[0].clone();
    std::fs::hard_link(&f, env.dir.path().join("other-name")).unwrap();
    let o = env.run(&[], &report(2));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("hard link"), "{}", stderr(&o));
}

#[test]
fn attachment_names_never_reach_a_path() {
    let env = Env::new();
    let names = [
        "../../../../tmp/evil.json.gz",
        "/etc/passwd.json.gz",
        "a\u{0}b.json.gz",
        "..\\..\\x.json.gz",
        "line\nbreak.json.gz",
    ];
    let mut parts = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let disp = format!("attachment; filename=\"{}\"", n.replace('\n', "\\n"));
        parts.push(attachment(
            "application/octet-stream",
            &disp,
            &gzip(&report(i)),
        ));
    }
    let mut broken = gzip(b"{}");
    broken.truncate(12);
    parts.push(attachment(
        "application/tlsrpt+gzip",
        "attachment; filename=\"../../quarantine-escape.gz\"",
        &broken,
    ));
    ok(&env.run(&[], &report_message("", &parts)));
    assert_eq!(ids(&env).len(), names.len());
    // Only our own names exist anywhere under the temp dir.
    let mut all = Vec::new();
    let mut stack = vec![env.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            all.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for name in &all {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)),
            "unexpected file name {name:?}"
        );
        assert!(!name.contains("evil") && !name.contains("escape") && !name.contains("passwd"));
    }
    assert!(!std::path::Path::new("/tmp/evil.json.gz").exists());
}

#[test]
#[ignore = "needs root"]
fn root_switches_to_user_before_reading() {
    require_root();
    let env = Env::new();
    ok(&env.run(&[], &report(1)));
    let f = &env.jsonl_files()[0];
    let meta = std::fs::metadata(f).unwrap();
    assert_eq!(meta.uid(), 65534, "record written as nobody");
    assert_eq!(meta.mode() & 0o777, 0o640);
    let spool_meta = std::fs::metadata(&env.spool).unwrap();
    assert_eq!(spool_meta.mode() & 0o777, 0o750);
    // --user root is refused; an unknown user is refused.
    for user in ["root", "no-such-user-xyz"] {
        let mut c = Command::new(BIN);
        c.arg("--spool")
            .arg(&env.spool)
            .args(["--log-stderr", "--user", user]);
        let o = run_cmd(c, &report(2));
        assert_eq!(code(&o), 75, "{user}: {}", stderr(&o));
        assert!(stderr(&o).contains("privileges:"), "{}", stderr(&o));
    }
}
