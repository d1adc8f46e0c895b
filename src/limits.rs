//! Size limits applied to untrusted input.
//!
//! Every limit here is enforced by a reader that returns an error when the limit is
//! crossed; nothing is silently truncated. Defaults are generous enough for any
//! plausible real report (a report with 100,000 failure-detail rows fits) and strict
//! enough that a hostile message cannot exhaust memory.

/// Named defaults, shared by the CLI (`--help` shows them) and the man page.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 32 * 1024 * 1024;
/// Decompressed size of one report document. A 1 GiB gzip bomb stops here.
pub const DEFAULT_MAX_REPORT_SIZE: u64 = 32 * 1024 * 1024;
/// Report documents in one message (parts, zip entries, nested messages).
pub const DEFAULT_MAX_REPORTS: usize = 64;
/// MIME nesting: multipart levels plus forwarded `message/rfc822` levels.
pub const DEFAULT_MAX_DEPTH: usize = 16;
/// An oversized message is streamed to quarantine up to this many bytes.
pub const DEFAULT_MAX_QUARANTINE_SIZE: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of message read into memory; a larger message goes to quarantine.
    pub max_message_size: u64,
    /// Decompressed bytes of one report document.
    pub max_report_size: u64,
    /// Report documents taken from one message.
    pub max_reports: usize,
    /// MIME nesting depth walked.
    pub max_depth: usize,
    /// Bytes of an oversized message kept in quarantine.
    pub max_quarantine_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_report_size: DEFAULT_MAX_REPORT_SIZE,
            max_reports: DEFAULT_MAX_REPORTS,
            max_depth: DEFAULT_MAX_DEPTH,
            max_quarantine_size: DEFAULT_MAX_QUARANTINE_SIZE,
        }
    }
}
