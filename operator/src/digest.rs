//! The summary as a mail digest: one MIME message (multipart/alternative: the text table
//! and the HTML view, from the same document) handed to `sendmail -t -i`.
//!
//! Header values are built from the command line and figures only; nothing from a
//! report reaches a header. The text part is the table view (every report string made
//! safe for a terminal: no line break, no escape), 8bit, lines of at most 100
//! characters; the HTML part is escaped, then base64 (its lines are long). The MIME
//! boundary is 128 random bits from the kernel, and checked absent from both parts, so
//! a report cannot guess it and add a part of its own.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::summary::Doc;

pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// RFC 2045 base64 with 76-character lines.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2 + 4);
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push('\n');
        }
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out.push('\n');
    out
}

/// An address for a header: refuses CR, LF and anything a header could be split with.
fn header_safe(s: &str) -> Result<&str, String> {
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ',' || c == ';') {
        Err(format!("{s:?}: not a single mail address"))
    } else {
        Ok(s)
    }
}

/// A MIME boundary no one can guess: `tlsrpt-` and 32 hex digits from /dev/urandom.
pub fn random_boundary() -> Result<String, String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(format!(
        "tlsrpt-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// RFC 5322 date-time (`Sun, 29 Nov 2026 20:00:00 +0000`).
pub fn rfc5322(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = crate::window::rfc3339(t); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let wd = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {} {} {} {} +0000",
        iso[8..10].trim_start_matches('0'),
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

/// Builds the message. `now` is RFC 2822's Date value; `boundary` one of
/// [`random_boundary`] (refused if either part holds it).
pub fn message(
    doc: &Doc,
    to: &[String],
    from: Option<&str>,
    date: &str,
    boundary: &str,
) -> Result<String, String> {
    let failed: u64 = doc.domains.iter().map(|d| d.sessions.failed).sum();
    let failing = doc.domains.iter().filter(|d| d.sessions.failed > 0).count();
    let subject = format!(
        "TLS report digest: {failed} failed sessions in {failing} of {} domains, {} .. {}",
        doc.domains.len(),
        &doc.window.since[..10.min(doc.window.since.len())],
        &doc.window.until[..10.min(doc.window.until.len())]
    );
    let mut m = String::new();
    if let Some(f) = from {
        m.push_str(&format!("From: {}\n", header_safe(f)?));
    }
    let to: Vec<&str> = to
        .iter()
        .map(|t| header_safe(t))
        .collect::<Result<_, _>>()?;
    m.push_str(&format!("To: {}\n", to.join(", ")));
    m.push_str(&format!("Subject: {subject}\n"));
    m.push_str(&format!("Date: {date}\n"));
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\n\n"
    ));
    m.push_str("This is a MIME message: a text and an HTML view of the same summary.\n");
    m.push_str(&format!(
        "--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    ));
    let text = crate::render::table::render(doc, false);
    let html = base64(crate::render::html::render(doc).as_bytes());
    if text.contains(boundary) || html.contains(boundary) {
        return Err("the MIME boundary occurs in the digest: try again".into());
    }
    m.push_str(&text);
    m.push_str(&format!(
        "--{boundary}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
    ));
    m.push_str(&html);
    m.push_str(&format!("--{boundary}--\n"));
    Ok(m)
}

/// Hands the message to `sendmail -t -i` (and `-f FROM`); fails unless it exits 0.
pub fn send(sendmail: &str, from: Option<&str>, msg: &str) -> Result<(), String> {
    let mut c = Command::new(sendmail);
    c.args(["-t", "-i"]);
    if let Some(f) = from {
        c.arg("-f").arg(f);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{sendmail}: {e}"))?;
    let wrote = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(msg.as_bytes());
    let status = child.wait().map_err(|e| format!("{sendmail}: {e}"))?;
    // The exit status is the verdict that explains most: a sendmail that exits early
    // (refusing the message) makes our write fail with EPIPE, which says less.
    if !status.success() {
        return Err(format!("{sendmail} failed: {status}"));
    }
    // Exited 0 but did not take the whole message: still not sent.
    wrote.map_err(|e| format!("{sendmail}: writing the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "\n");
        assert_eq!(base64(b"f"), "Zg==\n");
        assert_eq!(base64(b"fo"), "Zm8=\n");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy\n");
        let long = base64(&[0u8; 100]);
        assert!(long.lines().all(|l| l.len() <= 76));
    }

    #[test]
    fn header_injection_refused() {
        assert!(header_safe("a@b\nBcc: x@y").is_err());
        assert!(header_safe("a@b, c@d").is_err());
        assert!(header_safe("postmaster@example.com").is_ok());
    }
}
