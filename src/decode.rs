//! Report part bytes → report document bytes: content sniffing, gzip and zip.
//!
//! Guarantee: no output buffer ever grows past the caller's limit. Inflation reads at
//! most `limit + 1` bytes and errors when the extra byte exists, so a kilobyte-sized
//! bomb that inflates to a gigabyte is stopped after `limit` bytes of memory.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::fmt;

/// What the bytes of a part look like, judged by their first bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Gzip,
    Zip,
    Json,
}

/// Magic numbers: gzip `1f 8b` (RFC 1952), zip `PK\x03\x04` (APPNOTE 4.3.7), JSON `{`
/// after optional whitespace and byte order mark.
pub fn sniff(b: &[u8]) -> Option<Format> {
    if b.starts_with(&[0x1f, 0x8b]) {
        return Some(Format::Gzip);
    }
    if b.starts_with(b"PK\x03\x04") {
        return Some(Format::Zip);
    }
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    match b.iter().find(|c| !c.is_ascii_whitespace()) {
        Some(b'{') => Some(Format::Json),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Inflated output would exceed the limit (a bomb, or an oversized report).
    TooLarge { limit: u64 },
    /// Corrupt or truncated gzip data.
    Gzip(String),
    /// A zip archive that cannot be read.
    Zip(&'static str),
    /// More report documents than the limit allows.
    TooManyEntries { limit: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { limit } => {
                write!(f, "decompressed report exceeds {limit} bytes")
            }
            DecodeError::Gzip(e) => write!(f, "broken gzip data: {e}"),
            DecodeError::Zip(e) => write!(f, "broken zip archive: {e}"),
            DecodeError::TooManyEntries { limit } => {
                write!(f, "more than {limit} report documents")
            }
        }
    }
}

/// Raw DEFLATE (RFC 1951) from `input`, appended to `out`, never more than `limit`
/// bytes added (an error, not a truncation, past that). `hint` sizes the allocation.
/// Output goes straight into `out` in 256 KiB steps: each byte is zeroed once and
/// written once, with no intermediate buffer and no copy. Returns the number of input
/// bytes the stream used.
fn inflate(
    input: &[u8],
    out: &mut Vec<u8>,
    limit: u64,
    hint: usize,
) -> Result<usize, InflateError> {
    const STEP: usize = 256 * 1024;
    let start = out.len();
    let most = limit.saturating_add(1).min(usize::MAX as u64) as usize;
    out.reserve_exact(hint.max(STEP).min(most));
    let mut d = Decompress::new(false);
    loop {
        let len = out.len();
        let room = most - (len - start);
        if room == 0 {
            out.truncate(len);
            return Err(InflateError::TooLarge);
        }
        out.resize(len + STEP.min(room), 0);
        let in_before = d.total_in();
        let out_before = d.total_out();
        let status = d.decompress(
            &input[in_before as usize..],
            &mut out[len..],
            FlushDecompress::None,
        );
        let written = (d.total_out() - out_before) as usize;
        out.truncate(len + written);
        let status = status.map_err(|e| InflateError::Corrupt(e.to_string()))?;
        if (out.len() - start) as u64 > limit {
            return Err(InflateError::TooLarge);
        }
        match status {
            Status::StreamEnd => return Ok(d.total_in() as usize),
            _ if d.total_in() == in_before && written == 0 => {
                return Err(InflateError::Corrupt("unexpected end of data".into()));
            }
            _ => {}
        }
    }
}

enum InflateError {
    TooLarge,
    Corrupt(String),
}

/// One gzip member (RFC 1952 §2.3) at the start of `b`, appended to `out`. Returns the
/// bytes consumed, header and trailer included. The CRC-32 and ISIZE trailer is
/// checked: a report that does not match its checksum is not stored.
fn gunzip_member(b: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<usize, DecodeError> {
    let bad = |m: &str| DecodeError::Gzip(m.to_owned());
    if b.len() < 10 || b[0] != 0x1f || b[1] != 0x8b {
        return Err(bad("not gzip data"));
    }
    if b[2] != 8 {
        return Err(bad("compression method is not deflate"));
    }
    let flags = b[3];
    let mut pos = 10;
    if flags & 0x04 != 0 {
        let xlen = u16_at(b, pos).ok_or_else(|| bad("truncated header"))?;
        pos += 2 + xlen;
    }
    for bit in [0x08, 0x10] {
        // FNAME, FCOMMENT: NUL-terminated.
        if flags & bit != 0 {
            let end = b
                .get(pos..)
                .and_then(|r| r.iter().position(|&c| c == 0))
                .ok_or_else(|| bad("truncated header"))?;
            pos += end + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2;
    }
    let body = b.get(pos..).ok_or_else(|| bad("truncated header"))?;
    // ISIZE (the size mod 2^32) sizes the first allocation; it is only a hint.
    let hint = if b.len() >= 4 {
        u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap_or([0; 4])) as usize
    } else {
        0
    };
    let start = out.len();
    let used = inflate(body, out, limit, hint).map_err(|e| match e {
        InflateError::TooLarge => DecodeError::TooLarge { limit },
        InflateError::Corrupt(m) => DecodeError::Gzip(m),
    })?;
    let trailer = body
        .get(used..used + 8)
        .ok_or_else(|| bad("truncated: no CRC-32 and size trailer"))?;
    let mut crc = Crc::new();
    crc.update(&out[start..]);
    let (want_crc, want_len) = (
        u32_at(trailer, 0).unwrap_or(0) as u32,
        u32_at(trailer, 4).unwrap_or(0) as u32,
    );
    if crc.sum() != want_crc || (out.len() - start) as u32 != want_len {
        return Err(bad("CRC-32 or length mismatch"));
    }
    Ok(pos + used + 8)
}

/// The result of inflating a gzip stream.
pub struct Gunzipped {
    pub data: Vec<u8>,
    /// Bytes after the last gzip member that were not another member (CRLF added by a
    /// gateway, say): ignored, and reported so a warning can be recorded.
    pub trailing: usize,
}

/// Inflates every gzip member in `b` (RFC 1952 §2.2 allows several) into one buffer.
pub fn gunzip(b: &[u8], limit: u64) -> Result<Gunzipped, DecodeError> {
    let mut out = Vec::new();
    let mut rest = b;
    loop {
        let budget = limit - out.len() as u64;
        let used = gunzip_member(rest, &mut out, budget).map_err(|e| match e {
            DecodeError::TooLarge { .. } => DecodeError::TooLarge { limit },
            e => e,
        })?;
        rest = &rest[used..];
        // Skip whitespace a gateway may have appended; another member may follow.
        let ws = rest
            .iter()
            .take_while(|c| c.is_ascii_whitespace() || **c == 0)
            .count();
        if rest[ws..].starts_with(&[0x1f, 0x8b]) {
            rest = &rest[ws..];
            continue;
        }
        return Ok(Gunzipped {
            data: out,
            trailing: rest.len(),
        });
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// One member of a zip archive.
pub struct ZipEntry {
    /// The entry name: attacker-controlled text, for records and logs only.
    pub name: String,
    pub data: Vec<u8>,
}

/// Reads every file in a zip archive through its central directory (APPNOTE 4.3.12,
/// 4.3.16). Stored and deflated entries are supported, which is what report senders
/// produce; encrypted or otherwise compressed entries are an error. The sum of all
/// inflated entries is bounded by `limit`.
pub fn unzip(b: &[u8], limit: u64, max_entries: usize) -> Result<Vec<ZipEntry>, DecodeError> {
    // End of central directory: 22 bytes plus a comment of at most 65535.
    let min = b.len().saturating_sub(22 + 65_535);
    let eocd = (min..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))
        .ok_or(DecodeError::Zip("no end of central directory"))?;
    let count = u16_at(b, eocd + 10).ok_or(DecodeError::Zip("short"))?;
    let mut at = u32_at(b, eocd + 16).ok_or(DecodeError::Zip("short"))?;
    let mut entries = Vec::new();
    let mut used: u64 = 0;
    for _ in 0..count {
        if !b.get(at..).is_some_and(|s| s.starts_with(b"PK\x01\x02")) {
            return Err(DecodeError::Zip("bad central directory entry"));
        }
        let flags = u16_at(b, at + 8).ok_or(DecodeError::Zip("short"))?;
        let method = u16_at(b, at + 10).ok_or(DecodeError::Zip("short"))?;
        let csize = u32_at(b, at + 20).ok_or(DecodeError::Zip("short"))?;
        let nlen = u16_at(b, at + 28).ok_or(DecodeError::Zip("short"))?;
        let elen = u16_at(b, at + 30).ok_or(DecodeError::Zip("short"))?;
        let clen = u16_at(b, at + 32).ok_or(DecodeError::Zip("short"))?;
        let local = u32_at(b, at + 42).ok_or(DecodeError::Zip("short"))?;
        let name_bytes = b
            .get(at + 46..at + 46 + nlen)
            .ok_or(DecodeError::Zip("short"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        at += 46 + nlen + elen + clen;
        if name.ends_with('/') {
            continue; // a directory
        }
        if flags & 1 != 0 {
            return Err(DecodeError::Zip("encrypted entry"));
        }
        if entries.len() >= max_entries {
            return Err(DecodeError::TooManyEntries { limit: max_entries });
        }
        if !b.get(local..).is_some_and(|s| s.starts_with(b"PK\x03\x04")) {
            return Err(DecodeError::Zip("bad local header"));
        }
        let lnlen = u16_at(b, local + 26).ok_or(DecodeError::Zip("short"))?;
        let lelen = u16_at(b, local + 28).ok_or(DecodeError::Zip("short"))?;
        let start = local + 30 + lnlen + lelen;
        let comp = b
            .get(start..start.saturating_add(csize))
            .ok_or(DecodeError::Zip("entry past end"))?;
        let budget = limit.saturating_sub(used);
        let mut data = Vec::new();
        match method {
            0 if comp.len() as u64 > budget => return Err(DecodeError::TooLarge { limit }),
            0 => data.extend_from_slice(comp),
            8 => {
                inflate(comp, &mut data, budget, 0).map_err(|e| match e {
                    InflateError::TooLarge => DecodeError::TooLarge { limit },
                    InflateError::Corrupt(_) => DecodeError::Zip("corrupt deflate data"),
                })?;
            }
            _ => return Err(DecodeError::Zip("unsupported compression method")),
        }
        used += data.len() as u64;
        entries.push(ZipEntry { name, data });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sniffs_magic() {
        assert_eq!(sniff(&gz(b"{}")), Some(Format::Gzip));
        assert_eq!(sniff(b"PK\x03\x04...."), Some(Format::Zip));
        assert_eq!(sniff(b" \r\n{\"a\":1}"), Some(Format::Json));
        assert_eq!(sniff(b"\xEF\xBB\xBF{}"), Some(Format::Json));
        assert_eq!(sniff(b"<?xml version"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn gunzip_tolerates_trailing_bytes_and_multiple_members() {
        let mut b = gz(b"{\"a\":");
        b.extend(gz(b"1}"));
        b.extend(b"\r\n");
        let g = gunzip(&b, 100).unwrap();
        assert_eq!(g.data, b"{\"a\":1}");
        assert_eq!(g.trailing, 2, "the CRLF is reported");
        let mut b = gz(b"{}");
        b.extend(b"garbage");
        assert_eq!(gunzip(&b, 100).unwrap().trailing, 7);
    }

    #[test]
    fn gunzip_limits_and_errors() {
        let bomb = gz(&vec![b' '; 1 << 20]);
        assert_eq!(
            gunzip(&bomb, 1000).err(),
            Some(DecodeError::TooLarge { limit: 1000 })
        );
        assert_eq!(gunzip(&bomb, 1 << 20).unwrap().data.len(), 1 << 20);
        let mut truncated = gz(b"{\"x\":1}");
        truncated.truncate(12);
        assert!(matches!(gunzip(&truncated, 100), Err(DecodeError::Gzip(_))));
    }
}
