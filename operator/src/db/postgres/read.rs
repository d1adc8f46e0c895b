//! The PostgreSQL reader: the read commands' queries (`summary`, `check`, `metrics`
//! with `--db`), each streamed through a portal in one read-only snapshot.

use postgres::types::ToSql;

use super::{Pg, e, open};
use crate::db::figures::{Figure, Group, KEYS, Name, Query, Row, Total};
use crate::db::{DbResult, LeftOutGroup, Reader};

impl Pg {
    pub(super) fn another(&self) -> DbResult<Pg> {
        let client = open(&self.config, &self.tls).map_err(e)?;
        Ok(Pg {
            client,
            config: self.config.clone(),
            tls: self.tls.clone(),
            st: None,
            figures: self.figures,
        })
    }

    /// Streams the rows of `sql` through a portal, FETCH at a time, in a read-only
    /// snapshot the loads cannot change half-way.
    fn stream(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        settings: &str,
        f: &mut dyn FnMut(&postgres::Row),
    ) -> DbResult<()> {
        let mut tx = self
            .client
            .build_transaction()
            .read_only(true)
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()
            .map_err(e)?;
        if !settings.is_empty() {
            tx.batch_execute(settings).map_err(e)?;
        }
        // A portal read FETCH rows at a time: the client holds one batch, whatever the
        // number of groups (the driver would otherwise take rows off the socket as fast
        // as the server sends them).
        let portal = tx.bind(sql, params).map_err(e)?;
        loop {
            let batch = tx.query_portal(&portal, FETCH).map_err(e)?;
            for r in &batch {
                f(r);
            }
            if batch.len() < FETCH as usize {
                break;
            }
        }
        tx.commit().map_err(e)
    }
}

/// The named columns of a figure row at `i` (see [`KEYS`]), then its two counts.
fn row_at(r: &postgres::Row, i: usize) -> Row {
    let name: Option<String> = r.get(i);
    Row {
        figure: name.as_deref().and_then(Name::parse),
        organization: r.get(i + 1),
        policy_type: r.get(i + 2),
        result_type: r.get(i + 3),
        mx_host: r.get(i + 4),
        ip: r.get(i + 5),
        reason: r.get(i + 6),
        uri: r.get(i + 7),
        sts_policy: r.get(i + 8),
        successful: r.get::<_, Option<i64>>(i + 9).unwrap_or(0),
        failed: r.get::<_, Option<i64>>(i + 10).unwrap_or(0),
    }
}

/// `(authenticated OR $E OR trust_needs = ANY($C))`: does a row count, by the query's
/// trust ($E everything, $C the covered `trust_needs` values).
fn counted(everything: &str, covered: &str) -> String {
    counted_in("", everything, covered)
}

/// [`counted`] of the rows of table alias `t` (`"f."`).
fn counted_in(t: &str, everything: &str, covered: &str) -> String {
    format!(
        "({t}authenticated OR {everything} OR coalesce({t}trust_needs = ANY({covered}), false))"
    )
}

impl Reader for Pg {
    fn version(&mut self) -> DbResult<i64> {
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass('tlsrpt_schema_version') IS NOT NULL",
                &[],
            )
            .map_err(e)?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let v: i32 = self
            .client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM tlsrpt_schema_version",
                &[],
            )
            .map_err(e)?
            .get(0);
        Ok(i64::from(v))
    }

    fn another_reader(&self) -> DbResult<Option<Box<dyn Reader>>> {
        Ok(Some(Box::new(self.another()?)))
    }

    fn figures(&mut self, q: &Query, f: &mut dyn FnMut(Group)) -> DbResult<()> {
        // The groups are few next to the figures, but the planner cannot tell (the keys
        // are correlated) and sorts a year's figures on disk: hashed in 64 MiB they took
        // 2.3 s instead of 5.1 s (200,000 reports, PostgreSQL 15). JIT compiling the
        // expressions costs more than it saves here (0.4 s on a 78 ms week). These
        // settings last until this transaction ends.
        let (index, of) = (q.share.0 as i32, q.share.1.max(1) as i32);
        let params: [&(dyn ToSql + Sync); 8] = [
            &q.previous_since,
            &q.since,
            &q.until,
            &q.domains,
            &of,
            &index,
            &q.everything,
            &q.covered,
        ];
        self.stream(
            &figures_sql(),
            &params,
            "SET LOCAL work_mem = '64MB'; SET LOCAL enable_sort = off; SET LOCAL jit = off",
            &mut |r| {
                let row = row_at(r, 3);
                let (successful, failed) = (row.successful.max(0) as u64, row.failed.max(0) as u64);
                let day_only = r.get::<_, i32>(18) == 2;
                f(Group {
                    current: r.get(0),
                    counted: r.get(1),
                    domain: r.get(2),
                    figure: if day_only {
                        None
                    } else {
                        Figure::from_row(row)
                    },
                    day: r.get(14),
                    rows: r.get::<_, i64>(15).max(0) as u64,
                    successful,
                    failed,
                    first: r.get::<_, Option<i64>>(16).unwrap_or(0),
                    last: r.get::<_, Option<i64>>(17).unwrap_or(0),
                });
            },
        )
    }

    fn left_out(&mut self, q: &Query, f: &mut dyn FnMut(LeftOutGroup)) -> DbResult<()> {
        for per_domain in [false, true] {
            // Only the transport needs the meta row. `NOT f.authenticated` (implied by
            // "not counted") lets the planner read the partial index of such rows only.
            let (key, join, group) = if per_domain {
                ("f.policy_domain, NULL::bool", "", "1")
            } else {
                (
                    "f.trust_needs, coalesce(m.transport, 'mail') = 'https'",
                    "JOIN tlsrpt_report_meta m ON m.report_pk = f.report_pk",
                    "1, 2",
                )
            };
            let sql = format!(
                "SELECT {key}, count(DISTINCT f.report_pk), sum(f.successful)::int8, sum(f.failed)::int8
                 FROM tlsrpt_figure f {join}
                 WHERE f.figure = 'domain' AND NOT f.authenticated
                   AND f.end_at > $1 AND f.end_at <= $2 AND NOT {}
                   AND (cardinality($3::text[]) = 0 OR f.policy_domain = ANY($3))
                 GROUP BY {group}",
                counted_in("f.", "false", "$4::text[]")
            );
            let params: [&(dyn ToSql + Sync); 4] = [&q.since, &q.until, &q.domains, &q.covered];
            self.stream(&sql, &params, "", &mut |r| {
                let n = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64;
                let first: Option<String> = r.get(0);
                f(LeftOutGroup {
                    domain: if per_domain { first.clone() } else { None },
                    needs: if per_domain { None } else { first },
                    https: !per_domain && r.get::<_, Option<bool>>(1).unwrap_or(false),
                    reports: n(2),
                    successful: n(3),
                    failed: n(4),
                })
            })?;
        }
        Ok(())
    }

    fn totals(&mut self, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let sql = format!(
            "SELECT {c} AS counted, policy_domain, figure, organization, policy_type, result_type,
                    count(*), sum(successful)::int8, sum(failed)::int8, max(end_at), max(received_at)
             FROM tlsrpt_figure WHERE figure IN {counters} GROUP BY 1, 2, 3, 4, 5, 6
             UNION ALL
             SELECT {c} AS counted, policy_domain, figure, nullif(organization, ''),
                    nullif(policy_type, ''), nullif(result_type, ''),
                    reports, successful, failed, last_end, last_received
             FROM tlsrpt_figure_pruned",
            c = counted("$1", "$2"),
            counters = Name::sql_list(&Name::COUNTERS)
        );
        let params: [&(dyn ToSql + Sync); 2] = [&q.everything, &q.covered];
        self.stream(&sql, &params, "", &mut |r| {
            if let Some(t) = total(r, None) {
                f(t)
            }
        })
    }

    fn recipients(&mut self, q: &Query) -> DbResult<Vec<String>> {
        let mut out = Vec::new();
        let limit = crate::ours::MAX_ADDRESSES as i64;
        let params: [&(dyn ToSql + Sync); 3] = [&q.since, &q.until, &limit];
        self.stream(
            "SELECT DISTINCT lower(a) FROM (
               SELECT m.recipient AS a FROM tlsrpt_report_meta m JOIN tlsrpt_figure f ON f.report_pk = m.report_pk
               WHERE f.figure = 'domain' AND f.end_at > $1 AND f.end_at <= $2
               UNION
               SELECT m.original_recipient FROM tlsrpt_report_meta m JOIN tlsrpt_figure f ON f.report_pk = m.report_pk
               WHERE f.figure = 'domain' AND f.end_at > $1 AND f.end_at <= $2) AS t
             WHERE a LIKE '%@%' LIMIT $3",
            &params,
            "",
            &mut |r| out.push(r.get::<_, String>(0)),
        )?;
        Ok(out)
    }

    fn history(&mut self, since: i64, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let sql = format!(
            "SELECT {} AS counted, policy_domain, 'domain'::text, organization, NULL::text, NULL::text,
                    count(*), sum(successful)::int8, sum(failed)::int8, max(end_at), max(received_at),
                    start_at - (start_at % 86400 + 86400) % 86400
             FROM tlsrpt_figure WHERE figure = 'domain' AND end_at > $3 GROUP BY 1, 2, 4, 12",
            counted("$1", "$2")
        );
        let params: [&(dyn ToSql + Sync); 3] = [&q.everything, &q.covered, &since];
        self.stream(&sql, &params, "", &mut |r| {
            if let Some(t) = total(r, r.get(11)) {
                f(t)
            }
        })
    }
}

/// Groups fetched per round trip by `figures`: the client's memory for rows in flight
/// (5,000 cost 7 MiB more than 1,000 on a year of 2,000,000 reports, 500 a little less
/// again); the round trips are few next to the groups.
const FETCH: i32 = 500;

/// One row of the totals or the history: (counted, domain, figure, organization,
/// policy_type, result_type, rows, successful, failed, last end, last received).
fn total(r: &postgres::Row, day: Option<i64>) -> Option<Total> {
    let n = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0);
    let name: String = r.get(2);
    let row = Row {
        figure: Name::parse(&name),
        organization: r.get(3),
        policy_type: r.get(4),
        result_type: r.get(5),
        successful: n(7),
        failed: n(8),
        ..Row::default()
    };
    Figure::from_row(row).map(|figure| Total {
        counted: r.get(0),
        domain: r.get(1),
        figure,
        day,
        rows: n(6).max(0) as u64,
        last_end: r.get::<_, Option<i64>>(9).unwrap_or(0),
        last_received: r.get(10),
    })
}

/// The sums of a window's figures (see crate::db::figures::Group): per (window,
/// counted, domain, figure, keys) (`part` 1), and the current window's Domain figures
/// per UTC day of their report's start (`part` 2): two grouping sets of one scan,
/// hashed (see `figures`). Every sending IP's group is sent: the client keeps the
/// largest few as they stream (cheaper than ranking them here: a year of 2,000,000
/// reports has a million). $1 previous window's start, $2 current window's start, $3
/// its end, $4 the domains (empty: all), $5 and $6 the share of the domains (see
/// `Query`), $7 every report counts, $8 the covered `trust_needs` values. Columns:
/// cur, counted, domain, KEYS, successful, failed, day, rows, first, last, part.
fn figures_sql() -> String {
    format!(
        "WITH f AS (
SELECT end_at > $2 AS cur, {counted} AS counted, policy_domain AS domain, {KEYS},
       CASE WHEN figure = 'domain' AND end_at > $2 THEN start_at - (start_at % 86400 + 86400) % 86400 END AS day,
       successful, failed, start_at
FROM tlsrpt_figure
WHERE end_at > $1 AND end_at <= $3 AND (end_at > $2 OR figure = 'domain')
  AND NOT (figure IN ('result', 'type_result') AND result_type IS NULL)
  AND (cardinality($4::text[]) = 0 OR policy_domain = ANY($4))
  AND ($5 = 1 OR (hashtext(policy_domain) & 2147483647) % $5 = $6))
SELECT cur, counted, domain, {KEYS}, sum(successful)::int8 AS successful, sum(failed)::int8 AS failed,
       day, count(*) AS rows, min(start_at) AS first, max(start_at) AS last, GROUPING(organization, day) AS part
FROM f GROUP BY GROUPING SETS ((cur, counted, domain, {KEYS}), (cur, counted, domain, figure, day))
HAVING GROUPING(organization, day) = 1 OR (figure = 'domain' AND cur)",
        counted = counted("$7", "$8::text[]"),
    )
}
