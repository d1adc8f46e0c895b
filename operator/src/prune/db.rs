//! `tlsrpt prune --db`: the database side. Reports whose date range ended before the
//! cut go with all their rows (parsedmarc's policies and failure details, our meta and
//! facts: `ON DELETE CASCADE`), a few thousand reports per transaction so that no lock
//! is held long (a load or a summary running meanwhile waits at most one batch). Their
//! counter facts are first added to `tlsrpt_fact_pruned` in the same transaction, so
//! the counters of `metrics --db` never go down. The load checkpoints are not touched:
//! the spools' day files stay loaded, and a load after a prune reads nothing again.

use crate::load::{Pruned, Store};

/// Prunes (or, dry, counts) the rows older than `cut`; returns the line to print.
pub fn prune(store: &mut dyn Store, url: &str, cut: i64, dry_run: bool) -> Result<String, String> {
    let p: Pruned = store.prune(cut, dry_run).map_err(|e| e.msg)?;
    let what = format!(
        "{} reports ({} policy, failure-detail, meta and fact rows besides) from {url}",
        p.reports, p.rows
    );
    Ok(if dry_run {
        format!(
            "would remove {what}: about {} bytes would be freed",
            p.bytes
        )
    } else {
        format!("removed {what}: about {} bytes freed for reuse", p.bytes)
    })
}
