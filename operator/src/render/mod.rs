//! Renderers of the summary document: one module per output format.

pub mod csv;
pub mod html;
pub mod table;

use crate::summary::Doc;

/// The summary as one JSON document (schema/summary.schema.json).
pub fn json(doc: &Doc) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("serialising plain data cannot fail");
    s.push('\n');
    s
}
