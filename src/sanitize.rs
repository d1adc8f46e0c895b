//! Attacker-controlled text → text safe for one log line.
//!
//! Guarantee: the output contains no ASCII or Unicode control character (so no CR, LF,
//! ESC, NUL, DEL, C1 or bidi override), is at most `max` characters plus an ellipsis,
//! and is double-quoted when it contains a space, a quote, `=` or nothing at all, so
//! that a `key=value` line always splits the same way.

/// Characters that could move the cursor, end a line or reorder text on a terminal.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Replaces unsafe characters with `?` (CR/LF/TAB with a space) and truncates.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 3));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(match c {
            '\r' | '\n' | '\t' => ' ',
            c if is_unsafe(c) => '?',
            c => c,
        });
    }
    out
}

/// `clean`, then quoted when needed for a `key=value` field.
pub fn value(s: &str, max: usize) -> String {
    let c = clean(s, max);
    if c.is_empty() || c.contains([' ', '"', '=', '\\']) {
        format!("\"{}\"", c.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_characters_survive() {
        let hostile =
            "mx.example\r\n<14>Jan  1 00:00:00 host fake[1]: pwned\x1b[31m\u{202E}\u{0085}\0";
        let c = clean(hostile, 200);
        assert!(!c.chars().any(is_unsafe), "{c:?}");
        assert!(!c.contains('\n') && !c.contains('\r'));
    }

    #[test]
    fn quoting_and_truncation() {
        assert_eq!(value("Google Inc.", 50), "\"Google Inc.\"");
        assert_eq!(value("a\"b", 50), "\"a\\\"b\"");
        assert_eq!(value("", 50), "\"\"");
        assert_eq!(value("mx1.example.com", 50), "mx1.example.com");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
