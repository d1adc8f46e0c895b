//! A throw-away PostgreSQL cluster for the tests that need a real server (they run in
//! tests/run.sh's disposable root, which has the Debian package).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A throw-away PostgreSQL cluster: initdb and pg_ctl as an unprivileged user (root
/// runs them as `nobody`), a Unix socket in its own directory, its own port.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub port: u16,
    pub user: String,
    /// More server options (the TLS test's listen address and certificates).
    pub extra: String,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with(|_| String::new())
    }

    /// `setup` runs after initdb, before the server starts, with the data directory,
    /// and returns more server options.
    pub fn start_with(setup: impl FnOnce(&Path) -> String) -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .unwrap_or_else(|| {
                panic!(
                    "no PostgreSQL server binaries in /usr/lib/postgresql (Debian package \
                     postgresql); this test runs in tests/run.sh's disposable root, which has them"
                )
            });
        let dir = tempfile::tempdir().unwrap();
        let root = nix::unistd::geteuid().is_root();
        let user = if root {
            "nobody".to_owned()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "postgres".into())
        };
        if root {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = Cluster {
            dir,
            bin,
            port,
            user,
            extra: String::new(),
        };
        let data = c.dir.path().join("data");
        let ok = c.as_user(&[
            c.bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            &c.user,
            "--no-sync",
        ]);
        assert!(ok, "initdb failed");
        c.extra = setup(&data);
        c.pg_ctl_start();
        c
    }

    pub fn as_user(&self, argv: &[&str]) -> bool {
        let mut cmd = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
            c.args(argv);
            c
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(self.dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    pub fn pg_ctl_start(&self) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories={} -p {} -c fsync=off {}",
            self.dir.path().display(),
            self.port,
            self.extra
        );
        let log = self.dir.path().join("pg.log");
        assert!(
            self.as_user(&[
                self.bin.join("pg_ctl").to_str().unwrap(),
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start"
            ]),
            "pg_ctl start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn pg_ctl_stop(&self) {
        let data = self.dir.path().join("data");
        self.as_user(&[
            self.bin.join("pg_ctl").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
    }

    pub fn url(&self) -> String {
        format!(
            "host={} port={} user={} dbname=postgres",
            self.dir.path().display(),
            self.port,
            self.user
        )
    }

    pub fn query(&self, sql: &str) -> Vec<postgres::Row> {
        let mut c = postgres::Client::connect(&self.url(), postgres::NoTls).unwrap();
        c.query(sql, &[]).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0].get(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pg_ctl_stop();
    }
}
