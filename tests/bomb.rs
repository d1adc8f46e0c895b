//! A gzip bomb (1 GiB inflated from a few MiB) is refused with bounded memory.
//! Its own test binary: peak RSS is read with getrusage(RUSAGE_CHILDREN), which must
//! see no other test's children.

mod common;
use common::*;
use nix::sys::resource::{UsageWho, getrusage};
use std::process::{Command, Stdio};

fn one_gib_of_zeros_gzipped() -> Vec<u8> {
    // gzip(1) at level 1 takes a few seconds; one deflate member, as a real bomb is.
    let out = Command::new("sh")
        .args(["-c", "head -c 1073741824 /dev/zero | gzip -1"])
        .stderr(Stdio::inherit())
        .output()
        .expect("sh, head and gzip");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn gzip_bomb_is_refused_with_peak_memory_under_64_mib() {
    let bomb = one_gib_of_zeros_gzipped();
    assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
    let env = Env::new();
    // As a bare document on stdin and as a report attachment in a message.
    let msg = report_message(
        "",
        &[attachment(
            "application/tlsrpt+gzip",
            "attachment; filename=\"bomb.json.gz\"",
            &bomb,
        )],
    );
    for input in [&bomb, &msg] {
        let o = env.run(&[], input);
        let err = ok(&o);
        assert!(
            err.contains("status=quarantined") && err.contains("decompressed report exceeds"),
            "{err}"
        );
    }
    let q = env.quarantined();
    assert_eq!(q.len(), 2);
    assert_eq!(
        &q[0].0, &bomb,
        "quarantined copy is the original bomb, not its inflation"
    );
    // ru_maxrss is in KiB: the largest resident set of any child waited for so far.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    eprintln!(
        "peak RSS of tlsrpt-pipe on a 1 GiB gzip bomb: {} KiB",
        peak_kib
    );
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}
