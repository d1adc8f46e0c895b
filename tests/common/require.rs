//! Shared by the test helpers of both packages (tests/common, operator/tests/common).

use std::path::PathBuf;

/// Tests that need more than the Rust toolchain (a real daemon or tool, or root) are
/// `#[ignore = "needs ..."]`: `cargo test` lists them as ignored, never as passed, and
/// `tests/run.sh` runs them with `--ignored` inside its disposable root, which has every
/// component. There, a missing one is a failure, not a silent pass.
pub fn require_tool(candidates: &[&str], package: &str) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "none of {candidates:?} exists (Debian package {package}); this test runs in \
                 tests/run.sh's disposable root, which has it"
            )
        })
}
