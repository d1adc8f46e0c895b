//! The README and doc/ still work: every relative link and every repository path they
//! name exists; every `tlsrpt SUBCOMMAND --option` they show is an option that
//! subcommand has (its --help); the README keeps its two commands, the second followed
//! by the test command CI runs; and it stays short enough to read (reference material
//! lives in doc/ and the man pages).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every doc/*.md.
fn documents() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md")];
    if let Ok(rd) = std::fs::read_dir(root().join("doc")) {
        let mut d: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        d.sort();
        v.extend(d);
    }
    v
}

/// `](target)` of Markdown links.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find(')') {
            out.push(rest[..j].to_owned());
        }
    }
    out
}

/// Inline code spans and code block lines.
fn code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            out.push(line.to_owned());
        } else {
            out.extend(
                line.split('`')
                    .enumerate()
                    .filter(|(i, _)| i % 2 == 1)
                    .map(|(_, s)| s.to_owned()),
            );
        }
    }
    out
}

const TOP: [&str; 11] = [
    "contrib/",
    "tests/",
    "bench/",
    "man/",
    "doc/",
    "schema/",
    "packaging/",
    "operator/",
    "src/",
    "benches/",
    "fuzz/",
];

/// A repository path named in code, as it exists: `contrib/systemd/tlsrpt-load.*`
/// (any file with that stem), `operator/src/` (a directory).
fn exists(p: &str) -> bool {
    let p = p.trim_end_matches([',', '.', ';', ':', ')']);
    if let Some(stem) = p.strip_suffix(".*") {
        let path = root().join(stem);
        let (dir, name) = (path.parent().unwrap(), path.file_name().unwrap());
        return std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{}.", name.to_string_lossy()))
            })
        });
    }
    root().join(p).exists()
}

#[test]
fn every_link_and_repository_path_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for l in links(&text) {
            if l.starts_with("http") || l.starts_with('#') || l.starts_with("mailto:") {
                continue;
            }
            let path = l.split('#').next().unwrap();
            checked += 1;
            if !dir.join(path).exists() {
                missing.push(format!("{}: link {l}", doc.display()));
            }
        }
        for c in code(&text) {
            for word in c.split_whitespace() {
                let w = word.trim_matches(|ch: char| "\"'(),;".contains(ch));
                let templated =
                    w.contains(['$', '<', '{', '[']) || (w.contains('*') && !w.ends_with(".*"));
                let named = TOP.iter().any(|t| w.starts_with(t)) && !templated;
                checked += usize::from(named);
                if named && !exists(w) {
                    missing.push(format!("{}: path {w}", doc.display()));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} links and paths found");
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The options of `tlsrpt SUB` as its --help lists them.
fn options(sub: &str) -> Option<BTreeSet<String>> {
    let o = run(&[sub, "--help"]);
    if !o.status.success() {
        return None;
    }
    Some(
        stdout(&o)
            .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap().to_owned())
            .collect(),
    )
}

#[test]
fn every_tlsrpt_command_shown_has_its_options() {
    let mut wrong = Vec::new();
    let mut seen = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for c in code(&text) {
            // Each `tlsrpt SUB ...` in the span or line (sudo -u tlsrpt, pipes and all),
            // shell comments aside.
            let c = c.split(" #").next().unwrap_or("");
            if c.trim_start().starts_with('#') {
                continue;
            }
            let words: Vec<&str> = c.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                // Not the user of `sudo -u tlsrpt`, `install -o tlsrpt`.
                let an_argument = i > 0 && words[i - 1].starts_with('-');
                if !(*w == "tlsrpt" || w.ends_with("/tlsrpt")) || an_argument {
                    continue;
                }
                let Some(sub) = words.get(i + 1) else {
                    continue;
                };
                if sub.starts_with('-') || !sub.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                {
                    continue;
                }
                let Some(opts) = options(sub) else {
                    wrong.push(format!(
                        "{}: tlsrpt {sub}: no such subcommand ({c})",
                        doc.display()
                    ));
                    continue;
                };
                seen += 1;
                for a in words[i + 2..].iter().take_while(|a| {
                    !["|", "&&", ";", "||", ">", "<"].contains(a) && !a.ends_with(';')
                }) {
                    let a = a.trim_matches(|ch: char| "\"'`(),".contains(ch));
                    if a.starts_with("--") {
                        let name = a.split('=').next().unwrap();
                        if !opts.contains(name) {
                            wrong.push(format!("{}: tlsrpt {sub} {name}", doc.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        seen >= 10,
        "only {seen} tlsrpt commands found in the documents"
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_readme_keeps_its_two_commands_and_stays_short() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains("The second runs every test:\n\n```sh\ntests/run.sh\n```"),
        "the README's test command, as CI reads it"
    );
    assert!(
        readme.contains("```sh\ncargo build --release --locked && "),
        "the README's first command"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("tests/run.sh"),
        ".ci/run runs the README's test command"
    );
    let n = readme.lines().count();
    assert!(
        n <= 320,
        "README.md has {n} lines: reference material goes to doc/"
    );
}
