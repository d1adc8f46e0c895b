//! The PostgreSQL schema: the forward migrations, and the figures of reports stored
//! before version 5 (computed once from their records, copied in with one binary COPY).

use postgres::GenericClient;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::e;
use crate::db::DbResult;
use crate::db::figures::{KEYS, Name};
use crate::db::rows::FigureRows;

/// Forward migrations; entry `i` takes a database from version `i` to `i + 1`.
/// Version 1 is parsedmarc's tables plus ours; version 2 (shared with SQLite) adds
/// indexes and the once-per-report-and-domain view; version 3 stores the record and
/// warnings JSON with lz4 rather than pglz: TOAST compression was half of the load time
/// (rows already stored stay as they are). A server without lz4 (built without it, or
/// older than PostgreSQL 14) keeps pglz: the statement is run dynamically so that its
/// error is caught, and the version still moves on.
pub const MIGRATIONS: [&str; 5] = [
    r#"
CREATE TABLE IF NOT EXISTS smtp_tls_report (
    id BIGSERIAL PRIMARY KEY,
    organization_name TEXT NOT NULL,
    begin_date TIMESTAMPTZ NOT NULL,
    end_date TIMESTAMPTZ NOT NULL,
    contact_info TEXT,
    report_id TEXT NOT NULL,
    UNIQUE (organization_name, report_id, begin_date, end_date));
CREATE TABLE IF NOT EXISTS smtp_tls_policy (
    id BIGSERIAL PRIMARY KEY,
    report_id BIGINT REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    policy_domain TEXT,
    policy_type TEXT,
    policy_strings TEXT[],
    mx_host_patterns TEXT[],
    successful_session_count INT,
    failed_session_count INT);
CREATE TABLE IF NOT EXISTS smtp_tls_failure_detail (
    id BIGSERIAL PRIMARY KEY,
    policy_id BIGINT REFERENCES smtp_tls_policy(id) ON DELETE CASCADE,
    result_type TEXT,
    failed_session_count INT,
    sending_mta_ip INET,
    receiving_ip INET,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    additional_info_uri TEXT,
    failure_reason_code TEXT);
CREATE TABLE tlsrpt_report_meta (
    report_pk BIGINT PRIMARY KEY REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    dedup_key TEXT NOT NULL UNIQUE,
    received_at TIMESTAMPTZ,
    source_spool TEXT,
    dkim_verdict TEXT,
    warnings JSONB,
    record JSONB NOT NULL);
CREATE TABLE tlsrpt_checkpoint (
    spool TEXT NOT NULL,
    file TEXT NOT NULL,
    inode BIGINT NOT NULL,
    read_to BIGINT NOT NULL,
    PRIMARY KEY (spool, file));
"#,
    crate::db::SCHEMA_V2,
    r#"
DO $$
BEGIN
    EXECUTE 'ALTER TABLE tlsrpt_report_meta ALTER COLUMN record SET COMPRESSION lz4, '
            'ALTER COLUMN warnings SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression not available: the record column keeps pglz';
END
$$;
"#,
    crate::db::SCHEMA_V4,
    crate::db::SCHEMA_V5,
];

/// The figures of stored reports (crate::db::figures) into `tlsrpt_figure`, with one
/// binary COPY.
pub(super) fn copy_figures(
    c: &mut impl GenericClient,
    rows: &[(i64, &FigureRows)],
) -> DbResult<()> {
    if rows.iter().all(|(_, f)| f.figures.is_empty()) {
        return Ok(());
    }
    let mut w = BinaryCopyInWriter::new(
        c.copy_in(&format!(
            "COPY tlsrpt_figure (report_pk, end_at, start_at, authenticated, trust_needs, received_at,
             policy_domain, {KEYS}, successful, failed) FROM STDIN BINARY"
        ))
        .map_err(e)?,
        &[
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::BOOL,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
        ],
    );
    for (pk, f) in rows {
        for x in &f.figures {
            let r = x.figure.row();
            w.write(&[
                pk,
                &f.end_at,
                &f.start_at,
                &f.authenticated,
                &f.trust_needs,
                &f.received_at,
                &x.domain,
                &r.figure.map(Name::as_str),
                &r.organization,
                &r.policy_type,
                &r.result_type,
                &r.mx_host,
                &r.ip,
                &r.reason,
                &r.uri,
                &r.sts_policy,
                &r.successful,
                &r.failed,
            ])
            .map_err(e)?;
        }
    }
    w.finish().map_err(e)?;
    Ok(())
}

/// Version 5: the figures of the reports stored before it, from their records, and
/// their trust and transport.
pub(super) fn backfill(tx: &mut postgres::Transaction) -> DbResult<()> {
    let mut last = i64::MIN;
    loop {
        let batch: Vec<(i64, String)> = tx
            .query(
                "SELECT report_pk, record::text FROM tlsrpt_report_meta WHERE report_pk > $1
                 ORDER BY report_pk LIMIT $2",
                &[&last, &crate::db::BACKFILL_BATCH],
            )
            .map_err(e)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let Some(&(pk, _)) = batch.last() else {
            return Ok(());
        };
        last = pk;
        let figures: Vec<(i64, FigureRows)> = batch
            .iter()
            .filter_map(|(pk, rec)| crate::db::backfill_rows(rec).map(|f| (*pk, f)))
            .collect();
        let pks: Vec<i64> = figures.iter().map(|(pk, _)| *pk).collect();
        let transports: Vec<&str> = figures.iter().map(|(_, f)| f.transport).collect();
        let needs: Vec<Option<&str>> = figures
            .iter()
            .map(|(_, f)| f.trust_needs.as_deref())
            .collect();
        let rcpt: Vec<Option<&str>> = figures
            .iter()
            .map(|(_, f)| f.recipient.as_deref())
            .collect();
        let orig: Vec<Option<&str>> = figures
            .iter()
            .map(|(_, f)| f.original_recipient.as_deref())
            .collect();
        tx.execute(
            "UPDATE tlsrpt_report_meta m SET transport = u.t, trust_needs = u.n, recipient = u.r,
                    original_recipient = u.o
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(pk, t, n, r, o)
             WHERE m.report_pk = u.pk",
            &[&pks, &transports, &needs, &rcpt, &orig],
        )
        .map_err(e)?;
        let refs: Vec<(i64, &FigureRows)> = figures.iter().map(|(pk, f)| (*pk, f)).collect();
        copy_figures(tx, &refs)?;
    }
}
