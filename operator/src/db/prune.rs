//! `tlsrpt prune --db`: the database side, written once over the stores' primitives.
//! Reports whose date range ended before the cut go with all their rows (parsedmarc's
//! policies and failure details, our meta and figures: `ON DELETE CASCADE`), a few
//! thousand reports per transaction so that no lock is held long (a load or a summary
//! running meanwhile waits at most one batch). Their counter figures are first added
//! to `tlsrpt_figure_pruned` in the same transaction, so the counters of
//! `metrics --db` never go down. The load checkpoints are not touched: the spools' day
//! files stay loaded, and a load after a prune reads nothing again.

use super::{DbResult, PRUNE_BATCH, Pruned, Writer};

/// Prunes (or, dry, counts) the reports older than `cut`.
pub fn prune(w: &mut dyn Writer, cut: i64, dry_run: bool) -> DbResult<Pruned> {
    let before = w.space()?;
    // The bytes of the rows: the tables' and indexes' size shared out by reports
    // (an estimate: PostgreSQL and SQLite reuse what a DELETE frees).
    let share = |n: u64| {
        if before.reports > 0 {
            (before.bytes as f64 * n as f64 / before.reports as f64) as u64
        } else {
            0
        }
    };
    if dry_run {
        let (reports, rows) = w.count_old(cut)?;
        return Ok(Pruned {
            reports,
            rows,
            bytes: share(reports),
        });
    }
    let mut out = Pruned::default();
    loop {
        let (reports, rows) = w.prune_batch(cut, PRUNE_BATCH)?;
        if reports == 0 {
            break;
        }
        out.reports += reports;
        out.rows += rows;
    }
    out.bytes = share(out.reports);
    Ok(out)
}

/// The line `prune` prints for the database.
pub fn line(p: &Pruned, url: &str, dry_run: bool) -> String {
    let what = format!(
        "{} reports ({} policy, failure-detail, meta and figure rows besides) from {url}",
        p.reports, p.rows
    );
    if dry_run {
        format!(
            "would remove {what}: about {} bytes would be freed",
            p.bytes
        )
    } else {
        format!("removed {what}: about {} bytes freed for reuse", p.bytes)
    }
}
