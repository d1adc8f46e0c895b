//! The SQLite reader: the read commands' queries (`summary`, `check`, `metrics` with
//! `--db`), each in one read transaction.

use rusqlite::params;

use super::{Sqlite, e, schema_version};
use crate::db::figures::{Figure, Group, KEYS, Name, Query, Row, Total};
use crate::db::{DbResult, LeftOutGroup, Reader};

/// The named columns of a figure row at `i` (see [`KEYS`]), then its two counts.
fn row_at(r: &rusqlite::Row, i: usize) -> rusqlite::Result<Row> {
    let name: Option<String> = r.get(i)?;
    let n = |k: usize| -> rusqlite::Result<i64> { Ok(r.get::<_, Option<i64>>(k)?.unwrap_or(0)) };
    Ok(Row {
        figure: name.as_deref().and_then(Name::parse),
        organization: r.get(i + 1)?,
        policy_type: r.get(i + 2)?,
        result_type: r.get(i + 3)?,
        mx_host: r.get(i + 4)?,
        ip: r.get(i + 5)?,
        reason: r.get(i + 6)?,
        uri: r.get(i + 7)?,
        sts_policy: r.get(i + 8)?,
        successful: n(i + 9)?,
        failed: n(i + 10)?,
    })
}

/// `(authenticated OR ?E OR trust_needs IN covered)`: does a row count, by the query's
/// trust (?E everything, ?C the covered `trust_needs` values as a JSON array).
fn counted(everything: &str, covered: &str) -> String {
    counted_in("", everything, covered)
}

/// [`counted`] of the rows of table alias `t` (`"f."`).
fn counted_in(t: &str, everything: &str, covered: &str) -> String {
    format!(
        "({t}authenticated OR {everything} OR coalesce({t}trust_needs IN (SELECT value FROM json_each({covered})), 0))"
    )
}

impl Reader for Sqlite {
    fn version(&mut self) -> DbResult<i64> {
        schema_version(&self.conn)
    }

    fn figures(&mut self, q: &Query, f: &mut dyn FnMut(Group)) -> DbResult<()> {
        let domains = serde_json::to_string(&q.domains).expect("strings");
        let covered = serde_json::to_string(&q.covered).expect("strings");
        // One scan: a page cache does not help it, and in this process it would be the
        // largest part of the memory (the loads' 32 MiB). 4 MiB, for this connection.
        self.conn
            .execute_batch("PRAGMA cache_size = -4096")
            .map_err(e)?;
        let sql = figures_sql();
        let mut st = self.conn.prepare(&sql).map_err(e)?;
        let mut rows = st
            .query(params![
                q.previous_since,
                q.since,
                q.until,
                q.domains.len() as i64,
                domains,
                q.everything,
                crate::aggregate::MAX_IPS as i64,
                crate::summary::TOP_SENDING_IPS as i64,
                covered
            ])
            .map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let row = row_at(r, 3).map_err(e)?;
            let (successful, failed) = (row.successful.max(0) as u64, row.failed.max(0) as u64);
            f(Group {
                current: r.get::<_, i64>(0).map_err(e)? != 0,
                counted: r.get::<_, i64>(1).map_err(e)? != 0,
                domain: r.get(2).map_err(e)?,
                figure: Figure::from_row(row),
                day: r.get(14).map_err(e)?,
                rows: r.get::<_, i64>(15).map_err(e)?.max(0) as u64,
                successful,
                failed,
                first: r.get::<_, Option<i64>>(16).map_err(e)?.unwrap_or(0),
                last: r.get::<_, Option<i64>>(17).map_err(e)?.unwrap_or(0),
            });
        }
        Ok(())
    }

    fn left_out(&mut self, q: &Query, f: &mut dyn FnMut(LeftOutGroup)) -> DbResult<()> {
        let domains = serde_json::to_string(&q.domains).expect("strings");
        let covered = serde_json::to_string(&q.covered).expect("strings");
        for per_domain in [false, true] {
            // Only the transport needs the meta row. `NOT f.authenticated` (implied by
            // "not counted") lets the planner read the partial index of such rows only.
            let (key, join, group) = if per_domain {
                ("f.policy_domain, NULL", "", "1")
            } else {
                (
                    "f.trust_needs, coalesce(m.transport, 'mail') = 'https'",
                    "JOIN tlsrpt_report_meta m ON m.report_pk = f.report_pk",
                    "1, 2",
                )
            };
            let sql = format!(
                "SELECT {key}, count(DISTINCT f.report_pk), sum(f.successful), sum(f.failed)
                 FROM tlsrpt_figure f {join}
                 WHERE f.figure = 'domain' AND NOT f.authenticated
                   AND f.end_at > ?1 AND f.end_at <= ?2 AND NOT {}
                   AND (?3 = 0 OR f.policy_domain IN (SELECT value FROM json_each(?4)))
                 GROUP BY {group}",
                counted_in("f.", "0", "?5")
            );
            let mut st = self.conn.prepare(&sql).map_err(e)?;
            let mut rows = st
                .query(params![
                    q.since,
                    q.until,
                    q.domains.len() as i64,
                    domains,
                    covered
                ])
                .map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                let n = |i: usize| -> DbResult<u64> {
                    Ok(r.get::<_, Option<i64>>(i).map_err(e)?.unwrap_or(0).max(0) as u64)
                };
                let first: Option<String> = r.get(0).map_err(e)?;
                f(LeftOutGroup {
                    domain: if per_domain { first.clone() } else { None },
                    needs: if per_domain { None } else { first },
                    https: !per_domain && r.get::<_, Option<i64>>(1).map_err(e)?.unwrap_or(0) != 0,
                    reports: n(2)?,
                    successful: n(3)?,
                    failed: n(4)?,
                });
            }
        }
        Ok(())
    }

    fn totals(&mut self, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let covered = serde_json::to_string(&q.covered).expect("strings");
        let counters = Name::sql_list(&Name::COUNTERS);
        let sql = format!(
            "SELECT {c} AS counted, policy_domain, figure, organization, policy_type, result_type,
                    count(*), sum(successful), sum(failed), max(end_at), max(received_at)
             FROM tlsrpt_figure WHERE figure IN {counters} GROUP BY 1, 2, 3, 4, 5, 6
             UNION ALL
             SELECT {c} AS counted, policy_domain, figure, nullif(organization, ''),
                    nullif(policy_type, ''), nullif(result_type, ''),
                    reports, successful, failed, last_end, last_received
             FROM tlsrpt_figure_pruned",
            c = counted("?1", "?2")
        );
        let mut st = self.conn.prepare(&sql).map_err(e)?;
        let mut rows = st.query(params![q.everything, covered]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            if let Some(t) = total(r, None).map_err(e)? {
                f(t);
            }
        }
        Ok(())
    }

    fn recipients(&mut self, q: &Query) -> DbResult<Vec<String>> {
        self.recipients_of(q)
    }

    fn history(&mut self, since: i64, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let covered = serde_json::to_string(&q.covered).expect("strings");
        let sql = format!(
            "SELECT {} AS counted, policy_domain, figure, organization, NULL, NULL, count(*), sum(successful),
                    sum(failed), max(end_at), max(received_at), start_at - (start_at % 86400 + 86400) % 86400
             FROM tlsrpt_figure WHERE figure = 'domain' AND end_at > ?3 GROUP BY 1, 2, 4, 12",
            counted("?1", "?2")
        );
        let mut st = self.conn.prepare(&sql).map_err(e)?;
        let mut rows = st.query(params![q.everything, covered, since]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let day: Option<i64> = r.get(11).map_err(e)?;
            if let Some(t) = total(r, day).map_err(e)? {
                f(t);
            }
        }
        Ok(())
    }
}

impl Sqlite {
    fn recipients_of(&mut self, q: &Query) -> DbResult<Vec<String>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT DISTINCT lower(a) FROM (
                   SELECT m.recipient AS a FROM tlsrpt_report_meta m JOIN tlsrpt_figure f ON f.report_pk = m.report_pk
                   WHERE f.figure = 'domain' AND f.end_at > ?1 AND f.end_at <= ?2
                   UNION
                   SELECT m.original_recipient FROM tlsrpt_report_meta m JOIN tlsrpt_figure f ON f.report_pk = m.report_pk
                   WHERE f.figure = 'domain' AND f.end_at > ?1 AND f.end_at <= ?2)
                 WHERE a LIKE '%@%' LIMIT ?3",
            )
            .map_err(e)?;
        let rows = st
            .query_map(
                params![q.since, q.until, crate::ours::MAX_ADDRESSES as i64],
                |r| r.get(0),
            )
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }
}

/// One row of the totals or the history: (counted, domain, figure, organization,
/// policy_type, result_type, rows, successful, failed, last end, last received).
fn total(r: &rusqlite::Row, day: Option<i64>) -> rusqlite::Result<Option<Total>> {
    let n = |i: usize| -> rusqlite::Result<i64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0)) };
    let name: String = r.get(2)?;
    let row = Row {
        figure: Name::parse(&name),
        organization: r.get(3)?,
        policy_type: r.get(4)?,
        result_type: r.get(5)?,
        successful: n(7)?,
        failed: n(8)?,
        ..Row::default()
    };
    Ok(Figure::from_row(row).map(|figure| Total {
        counted: r.get::<_, i64>(0).unwrap_or(0) != 0,
        domain: r.get(1).unwrap_or_default(),
        figure,
        day,
        rows: n(6).unwrap_or(0).max(0) as u64,
        last_end: r.get::<_, Option<i64>>(9).ok().flatten().unwrap_or(0),
        last_received: r.get(10).ok().flatten(),
    }))
}

/// The sums of a window's figures (see crate::db::figures::Group): per (window,
/// counted, domain, figure, keys), the current window's Domain figures also per UTC day
/// of their report's start; of the sending IPs only the largest ?7 per (result type,
/// MX) and ?8 per domain. ?1 previous window's start, ?2 current window's start, ?3
/// its end, ?4 how many domains ?5 (a JSON array) holds, ?6 every report counts, ?9
/// the covered `trust_needs` values (a JSON array). Columns: cur, counted, domain,
/// KEYS, successful, failed, day, rows, first, last.
fn figures_sql() -> String {
    format!(
        "WITH g AS (
SELECT end_at > ?2 AS cur, {counted} AS counted, policy_domain AS domain, {KEYS},
       sum(successful) AS successful, sum(failed) AS failed,
       CASE WHEN figure = 'domain' AND end_at > ?2 THEN start_at - (start_at % 86400 + 86400) % 86400 END AS day,
       count(*) AS rows, min(start_at) AS first, max(start_at) AS last
FROM tlsrpt_figure
WHERE end_at > ?1 AND end_at <= ?3 AND (end_at > ?2 OR figure = 'domain')
  AND NOT (figure IN ('result', 'type_result') AND result_type IS NULL)
  AND (?4 = 0 OR policy_domain IN (SELECT value FROM json_each(?5)))
GROUP BY 1, 2, 3, {KEYS}, day)
SELECT * FROM g WHERE figure NOT IN {ranked}
UNION ALL
SELECT cur, counted, domain, {KEYS}, successful, failed, day, rows, first, last FROM (
    SELECT *, row_number() OVER (PARTITION BY cur, counted, domain, figure, result_type, mx_host
                                 ORDER BY failed DESC, ip COLLATE BINARY) AS rank
    FROM g WHERE figure IN {ranked}) AS ranked
WHERE rank <= CASE figure WHEN 'mx_ip' THEN ?7 ELSE ?8 END",
        counted = counted("?6", "?9"),
        ranked = Name::sql_list(&Name::RANKED),
    )
}
