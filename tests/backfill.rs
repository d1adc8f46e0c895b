//! contrib/backfill/tlsrpt-backfill on a mailbox its user cannot read: never "0
//! messages" and exit 0, but the path named and a failure (issue "Monitoring that cannot
//! stay silently green", the mailbox path). Run as the user who meets it: an ordinary
//! user, or `nobody` when the tests run as root.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

const NOBODY: u32 = 65_534;

fn backfill(env: &Env, boxes: &[&std::path::Path]) -> std::process::Output {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/backfill/tlsrpt-backfill"
    );
    let mut c = Command::new("sh");
    c.arg(script)
        .args(boxes)
        .arg("--")
        .arg("--spool")
        .arg(&env.spool);
    c.env("TLSRPT_PIPE", BIN).env_remove("TLSRPT_SPOOL");
    if is_root() {
        c.uid(NOBODY).gid(NOBODY);
    }
    c.output().unwrap()
}

#[test]
fn an_unreadable_mailbox_is_a_failure_that_names_it() {
    let env = Env::new();
    // A Maildir of 0700, not ours (root's when we are root, else made unreadable).
    let md = env.dir.path().join("Maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    std::fs::write(
        md.join("new/1.eml"),
        fixture("isseis_tlsrpt-digest/tlsrpt_failure.eml"),
    )
    .unwrap();
    let mbox = env.dir.path().join("mbox");
    std::fs::write(
        &mbox,
        b"From a@b Thu Jan  1 00:00:00 2026\nSubject: x\n\nhello\n",
    )
    .unwrap();
    if is_root() {
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&mbox, std::fs::Permissions::from_mode(0o600)).unwrap();
    } else {
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(&mbox, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let o = backfill(&env, &[&md, &mbox]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if !is_root() {
        std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(
        o.status.code(),
        Some(1),
        "{err}{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(&format!("{}: cannot read it", md.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: cannot read it", mbox.display())),
        "{err}"
    );
    assert!(env.records().is_empty());
    // Readable: imported, exit 0.
    std::fs::set_permissions(&md, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["cur", "new", "tmp"] {
        std::fs::set_permissions(md.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(md.join("new/1.eml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = backfill(&env, &[&md]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 messages: 1 stored"));
}
