//! The live-probe world of tests/world/up.sh (NSD, unbound, Postfix, nginx on 127.0.0.x
//! of the disposable root's network namespace), started once per test binary, plus the
//! hostile SMTP servers that are the tests' own (stall, garbage, a huge banner, a close,
//! and one that only counts), each counting the connections it accepted.
//!
//! Only for `#[ignore = "needs the probe world ..."]` tests: tests/run.sh runs them inside
//! the disposable root, where up.sh may rewrite /etc/postfix (it refuses anywhere else).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct World {
    pub dir: PathBuf,
    /// The test CA, for --ca-file.
    pub ca: PathBuf,
    /// Connections accepted by each server of the tests' own, by its address 127.0.0.61
    /// (index 0) to .65.
    pub accepted: [AtomicUsize; 5],
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The world, set up on first use.
pub fn world() -> &'static World {
    WORLD.get_or_init(|| {
        assert!(
            Path::new("/.tlsrpt-mta-root").exists(),
            "the probe world runs only inside tests/run.sh's disposable root"
        );
        let dir = PathBuf::from("/tmp/tlsrpt-world");
        let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/world/up.sh");
        // Output to a file: the daemons it starts would hold a pipe open for ever.
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("up.out");
        let st = Command::new(&up)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .status()
            .expect("run tests/world/up.sh");
        assert!(
            st.success(),
            "tests/world/up.sh: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        World {
            ca: dir.join("ca.pem"),
            dir,
            accepted: Default::default(),
        }
    });
    let w = WORLD.get().expect("initialised");
    hostile(w);
    w
}

static HOSTILE: OnceLock<()> = OnceLock::new();

/// The hostile servers on 127.0.0.61-64:25, and a counting one on .65.
fn hostile(w: &'static World) {
    HOSTILE.get_or_init(|| {
        for (i, octet) in (61..=65).enumerate() {
            let l = TcpListener::bind(("127.0.0.".to_owned() + &octet.to_string(), 25))
                .unwrap_or_else(|e| panic!("bind 127.0.0.{octet}:25: {e}"));
            std::thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(mut s) = s else { continue };
                    w.accepted[i].fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        s.set_write_timeout(Some(Duration::from_secs(60))).ok();
                        match octet {
                            // stall: accept, say nothing, hold the connection.
                            61 => std::thread::sleep(Duration::from_secs(120)),
                            // garbage: bytes that are not SMTP.
                            62 => {
                                let _ =
                                    s.write_all(b"\x16\x03\x01\x00\xff\xfe garbage \x00\x01\r\n");
                                std::thread::sleep(Duration::from_secs(120));
                            }
                            // huge: a 10 MB greeting line.
                            63 => {
                                let _ = s.write_all(b"220-");
                                let chunk = vec![b'x'; 64 * 1024];
                                for _ in 0..160 {
                                    if s.write_all(&chunk).is_err() {
                                        break;
                                    }
                                }
                            }
                            // close (64), count (65): hang up at once.
                            _ => drop(s),
                        }
                    });
                }
            });
        }
    });
}
