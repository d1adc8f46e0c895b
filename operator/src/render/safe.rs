//! Text that came from a report, a DNS answer or a probed server, made safe for the
//! medium it is shown in — one helper per medium, used at the edge where it is shown:
//!
//! - [`terminal`]: no control character (C0, DEL, C1: no escape sequence, no line
//!   break, no bell) and no bidirectional override (the "Trojan Source" reorderings):
//!   each becomes U+FFFD. The table, the check and check-domain text, the digest's
//!   text part, and every line on stderr.
//! - [`csv_cell`]: a cell that a spreadsheet would read as a formula (it begins with
//!   `=`, `+`, `-`, `@`, TAB or CR) gets a leading `'` (OWASP's CSV-injection advice);
//!   the CSV writer quotes the rest. Summary and export CSV.
//! - HTML is escaped by render::html::esc; JSON is written as is (its consumers are
//!   programs, and serde escapes every control character).
//! - [`cut`]: a string cut to at most N bytes on a character boundary (never a panic on
//!   a multi-byte character).

use std::borrow::Cow;

/// Is `c` shown as U+FFFD (in a terminal; in HTML too, but for line breaks)?
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// `s` with every control character and bidirectional override replaced by U+FFFD.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if s.chars().any(unsafe_char) {
        Cow::Owned(
            s.chars()
                .map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// A CSV cell a spreadsheet does not evaluate.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media() {
        assert_eq!(
            terminal("a\u{1b}]0;pwned\u{7}\u{1b}[31mb\r\nc\u{202e}d\u{9b}"),
            "a\u{FFFD}]0;pwned\u{FFFD}\u{FFFD}[31mb\u{FFFD}\u{FFFD}c\u{FFFD}d\u{FFFD}"
        );
        assert!(matches!(terminal("plain été"), Cow::Borrowed(_)));
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            assert!(csv_cell(f).starts_with('\''), "{f}");
        }
        assert_eq!(csv_cell("mail.example.com"), "mail.example.com");
        let s = format!("{}{}", "a".repeat(4095), "é".repeat(3));
        assert_eq!(cut(&s, 4096).len(), 4095);
        assert_eq!(cut("é", 1), "");
        assert_eq!(cut("abc", 10), "abc");
    }
}
