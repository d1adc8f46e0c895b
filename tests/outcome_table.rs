//! Walks the input → outcome → exit status table in man/tlsrpt-pipe.8 (EXIT STATUS):
//! every row has a case here, every case produces the row's exit status, exactly one
//! sanitised line on stderr, and the outcome the row names. Editing the table without
//! the code (or the code without the table) fails this test.

mod common;
use common::*;
use std::path::Path;

/// (input column, outcome column, exit column) of each table row.
fn table() -> Vec<(String, String, i32)> {
    let man =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/tlsrpt-pipe.8"))
            .unwrap();
    let start = man.find(".SH EXIT STATUS").expect("EXIT STATUS section");
    let body = &man[start..];
    let table = &body[body.find(".TS").unwrap()..body.find(".TE").unwrap()];
    let mut rows = Vec::new();
    let mut cells: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_block = false;
    for line in table.lines().skip(3) {
        if line == "T{" {
            in_block = true;
            cur.clear();
        } else if let Some(rest) = line.strip_prefix("T}") {
            in_block = false;
            cells.push(cur.trim().replace("\\-", "-"));
            for tail in rest.split('\t').filter(|t| !t.is_empty() && *t != "T{") {
                if tail.trim() != "Exit" {
                    let exit = tail.trim().parse().expect("exit column is a number");
                    rows.push((cells[0].clone(), cells[1].clone(), exit));
                }
                cells.clear();
            }
            if rest.ends_with("T{") {
                in_block = true;
                cur.clear();
            }
        } else if in_block {
            cur.push_str(line);
            cur.push(' ');
        }
    }
    rows
}

fn good() -> Vec<u8> {
    fixture("mjl-_mox/example.eml")
}

/// Runs the case for a row; returns (exit status, stderr, env for outcome checks).
fn case(input: &str) -> (i32, String, Env) {
    let env = Env::new();
    let o = if input.starts_with("reports found") {
        env.run(&[], &good())
    } else if input.starts_with("report already stored") {
        ok(&env.run(&[], &good()));
        env.run(&[], &good())
    } else if input.starts_with("report present but unreadable") {
        env.run(&[], &fixture("YnkDK_tls_reporting/truncated.gz"))
    } else if input.starts_with("message over") {
        env.run(&["--max-message-size", "1K"], &good())
    } else if input.starts_with("no TLS report, with --leave-unrecognized") {
        env.run(
            &["--leave-unrecognized"],
            b"From: a@example.org\nSubject: hi\n\nhello\n",
        )
    } else if input.starts_with("no TLS report") {
        env.run(&[], b"From: a@example.org\nSubject: hi\n\nhello\n")
    } else if input.starts_with("spool missing") {
        std::fs::remove_dir_all(&env.spool).unwrap();
        env.run(&[], &good())
    } else if input.starts_with("bad command line") {
        env.run(&["--max-reports", "many"], &good())
    } else if input.starts_with("internal error") {
        let mut c = env.cmd(&[]);
        c.env("TLSRPT_PIPE_FAULT", "panic");
        run_cmd(c, &good())
    } else {
        panic!("no test case for table row {input:?}: add one");
    };
    (code(&o), stderr(&o), env)
}

#[test]
fn every_row_of_the_man_page_table_holds() {
    let rows = table();
    assert_eq!(rows.len(), 9, "{rows:#?}");
    for (input, outcome, exit) in rows {
        let (got, err, env) = case(&input);
        assert_eq!(got, exit, "{input}: stderr {err}");
        assert_eq!(err.lines().count(), 1, "{input}: one line: {err:?}");
        assert!(
            !err.trim_end().chars().any(char::is_control),
            "{input}: {err:?}"
        );
        let o = outcome.as_str();
        if o.starts_with("appended") {
            assert!(
                err.contains("status=stored") && env.records().len() == 1,
                "{input}: {err}"
            );
        } else if o.starts_with("logged as duplicate") {
            assert!(
                err.contains("status=duplicate") && env.records().len() == 1,
                "{input}: {err}"
            );
        } else if o.contains("quarantine") && !o.starts_with("logged and dropped") {
            assert!(
                err.contains("status=quarantined") && env.quarantined().len() == 1,
                "{input}: {err}"
            );
        } else if o.starts_with("logged and dropped")
            || o.starts_with("logged, left to the retriever")
        {
            assert!(
                err.contains("status=no-report") && env.quarantined().is_empty(),
                "{input}: {err}"
            );
        } else if o.starts_with("one line on stderr") {
            assert!(err.starts_with("tlsrpt-pipe: "), "{input}: {err}");
            assert!(env.records().is_empty(), "{input}: nothing partial left");
        } else {
            panic!("outcome {o:?} not checked: add a check");
        }
    }
}
