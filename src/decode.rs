//! Report part bytes → report document bytes: content sniffing, gzip and zip.
//!
//! Guarantee: no output buffer ever grows past the caller's limit. Inflation reads at
//! most `limit + 1` bytes and errors when the extra byte exists, so a kilobyte-sized
//! bomb that inflates to a gigabyte is stopped after `limit` bytes of memory.

use std::fmt;
use std::io::{self, Read};

use flate2::bufread::{DeflateDecoder, GzDecoder};

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

/// Reads all of `r`, erroring (not truncating) past `limit` bytes.
fn read_limited(r: impl Read, limit: u64) -> io::Result<Result<Vec<u8>, DecodeError>> {
    let mut out = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Ok(Err(DecodeError::TooLarge { limit }));
    }
    Ok(Ok(out))
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
        let mut dec = GzDecoder::new(rest);
        let budget = limit - out.len() as u64;
        match read_limited(&mut dec, budget) {
            Ok(Ok(chunk)) => out.extend_from_slice(&chunk),
            Ok(Err(_)) => return Err(DecodeError::TooLarge { limit }),
            Err(e) => return Err(DecodeError::Gzip(e.to_string())),
        }
        rest = dec.into_inner();
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
        let data = match method {
            0 => read_limited(comp, budget),
            8 => read_limited(DeflateDecoder::new(comp), budget),
            _ => return Err(DecodeError::Zip("unsupported compression method")),
        }
        .map_err(|_| DecodeError::Zip("corrupt deflate data"))?
        .map_err(|_| DecodeError::TooLarge { limit })?;
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
