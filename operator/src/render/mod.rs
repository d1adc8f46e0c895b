//! Renderers of the summary document: one module per output format.

pub mod csv;
pub mod html;
pub mod safe;
pub mod table;

use std::io::Write;

use crate::summary::Doc;

/// Writes the summary as one JSON document (schema/summary.schema.json), streamed: a
/// year of a large spool makes a document of tens of megabytes.
pub fn json(doc: &Doc, out: impl std::io::Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, doc).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}
