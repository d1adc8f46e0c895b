//! HTTPS reports (RFC 8460 §3, §5.4) as a CGI program (RFC 3875): one POST → the same
//! parsing, limits, dedup, spool, alerts and nothing-lost guarantee as a mailed report.
//!
//! Guarantees:
//! - Only POST (405 with `Allow: POST`). A body needs `CONTENT_LENGTH` (411), unless
//!   the server says it de-chunked one (`Transfer-Encoding: chunked`): then it is read
//!   to end of file under the cap. A declared length over `--max-body-size` (default
//!   10 MiB, RFC 8460 §5.2's commonly observed limit) is refused before a byte is read
//!   (413); no more than `CONTENT_LENGTH` bytes are ever read (RFC 3875 §4.2).
//! - `application/tlsrpt+gzip` and `application/tlsrpt+json` are taken, and so is a body
//!   that starts with gzip's `1f 8b` or `{` whatever its declared type (a real sender's
//!   gzip did not match its Content-Type); anything else is 415.
//! - `201 Created` only once the record is fsynced; `200` for a report already stored;
//!   `400` with one line for a body that is no usable report (kept in quarantine, as for
//!   mail); `503` with `Retry-After` for local trouble, so the sender retries (§5.5).
//!   Never a 5xx for bad input, never a 2xx before the record is durable, never a path
//!   or a stack trace in a body (those go to the log).
//! - HTTPS reports carry no DKIM signature: their verdict is `unauthenticated`, so they
//!   raise no alert unless `--alert-unauthenticated`; `--accept-domain` quarantines
//!   reports for other domains, since anyone can POST.

use std::io::{self, Read, Write};

use crate::cli::Cli;
use crate::decode;
use crate::error::Error;
use crate::log::Logger;
use crate::sanitize;
use crate::{Outcome, Transport};

/// What the web server told us about the request (RFC 3875 §4.1 meta-variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub content_length: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub transfer_encoding: Option<String>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
}

impl Request {
    /// Reads the meta-variables through `var` (the process environment in `main`).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Request {
        Request {
            method: var("REQUEST_METHOD").unwrap_or_default(),
            content_length: var("CONTENT_LENGTH").filter(|v| !v.is_empty()),
            content_type: var("CONTENT_TYPE").filter(|v| !v.is_empty()),
            content_encoding: var("HTTP_CONTENT_ENCODING").filter(|v| !v.is_empty()),
            transfer_encoding: var("HTTP_TRANSFER_ENCODING").filter(|v| !v.is_empty()),
            remote_addr: var("REMOTE_ADDR").filter(|v| !v.is_empty()),
            user_agent: var("HTTP_USER_AGENT").filter(|v| !v.is_empty()),
        }
    }
}

/// Does the environment say this is a CGI request?
pub fn invoked_as_cgi(var: impl Fn(&str) -> Option<String>) -> bool {
    var("GATEWAY_INTERFACE").is_some() && var("REQUEST_METHOD").is_some()
}

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// One line of plain text.
    pub body: String,
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Response {
    pub fn new(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The CGI response: `Status`, `Content-Type`, our headers, blank line, body.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut s = format!(
            "Status: {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.push_str(&sanitize::clean(&self.body, 300));
        s.push('\n');
        out.write_all(s.as_bytes())?;
        out.flush()
    }
}

/// Checks that can be made before reading the body: method, length. Returns the
/// number of bytes to read (`None`: to end of file, for a de-chunked body).
pub fn precheck(r: &Request, max: u64) -> Result<Option<u64>, Response> {
    if r.method != "POST" {
        return Err(Response::new(405, "only POST is accepted here").with("Allow", "POST"));
    }
    match &r.content_length {
        Some(v) => {
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| Response::new(400, "Content-Length is not a number"))?;
            if n > max {
                return Err(Response::new(
                    413,
                    format!("a report body is limited to {max} bytes"),
                ));
            }
            Ok(Some(n))
        }
        None if r
            .transfer_encoding
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) =>
        {
            Ok(None)
        }
        None => Err(Response::new(411, "Content-Length is required")),
    }
}

/// Reads the body: exactly `len` bytes, or to end of file under `max`.
pub fn read_body(input: &mut impl Read, len: Option<u64>, max: u64) -> Result<Vec<u8>, Response> {
    let mut body = Vec::new();
    let limit = len.unwrap_or(max + 1);
    input
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|_| Response::new(400, "the request body could not be read"))?;
    match len {
        Some(n) if (body.len() as u64) < n => Err(Response::new(
            400,
            format!("the body ended after {} of {n} bytes", body.len()),
        )),
        None if body.len() as u64 > max => Err(Response::new(
            413,
            format!("a report body is limited to {max} bytes"),
        )),
        _ => Ok(body),
    }
}

/// Is this media type one we take, or does the body say it is a report anyway?
pub fn acceptable(r: &Request, body: &[u8]) -> bool {
    let ct = r.content_type.as_deref().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let declared = matches!(
        ct.as_deref(),
        Some("application/tlsrpt+gzip" | "application/tlsrpt+json")
    );
    // Sniffed: gzip, or JSON (decode::sniff knows both, and zip).
    declared || decode::sniff(body).is_some()
}

/// The answer for a delivery's outcome.
pub fn answer(result: Result<Outcome, Error>, retry_after: u64) -> Response {
    match result {
        Ok(out) if out.stored > 0 => Response::new(201, format!("stored {} report(s)", out.stored)),
        Ok(out) if out.duplicates > 0 && out.quarantined.is_none() => {
            Response::new(200, "this report is stored already")
        }
        Ok(out) => {
            let why = out
                .quarantined
                .map(|(_, reason)| reason)
                .or(out.no_report.map(str::to_owned))
                .unwrap_or_else(|| "no TLS report in the body".into());
            Response::new(400, format!("not a usable TLS report: {why}"))
        }
        Err(_) => Response::new(503, "temporary failure storing the report; retry later")
            .with("Retry-After", retry_after.to_string()),
    }
}

/// Serves one request: checks, reads the body, delivers it, answers. Returns the
/// response written and the delivery's error, if any (for the log).
pub fn serve(
    cli: &Cli,
    req: &Request,
    input: &mut impl Read,
    out: &mut impl Write,
    log: &mut Logger,
) -> Response {
    let response = (|| {
        let len = precheck(req, cli.max_body_size)?;
        let body = read_body(input, len, cli.max_body_size)?;
        if !acceptable(req, &body) {
            return Err(Response::new(
                415,
                "send application/tlsrpt+gzip or application/tlsrpt+json",
            ));
        }
        // An HTTPS body is one document: what is no report is kept for inspection.
        let mut c = cli.clone();
        c.keep_unrecognized = true;
        c.max_message_size = cli.max_body_size.max(1);
        let transport = Transport::Https {
            remote_address: req.remote_addr.clone(),
            user_agent: req.user_agent.clone(),
            content_type: req.content_type.clone(),
        };
        let result = crate::run_with(&c, &body[..], log, &transport);
        if let Err(e) = &result {
            log.log(
                crate::log::Severity::Err,
                &format!(
                    "status=deferred transport=https remote-address={} reason={}",
                    sanitize::value(req.remote_addr.as_deref().unwrap_or(""), 80),
                    sanitize::value(&e.to_string(), 300)
                ),
                &[],
            );
        }
        Ok(answer(result, cli.retry_after))
    })()
    .unwrap_or_else(|r| r);
    if response.status >= 400 && response.status != 503 && response.status != 400 {
        // Refused before delivery (405, 411, 413, 415): logged like a delivery.
        log.log(
            crate::log::Severity::Info,
            &format!(
                "status=refused transport=https http-status={} remote-address={} size={}",
                response.status,
                sanitize::value(req.remote_addr.as_deref().unwrap_or(""), 80),
                sanitize::value(req.content_length.as_deref().unwrap_or(""), 40)
            ),
            &[],
        );
    }
    let _ = response.write(out);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(len: Option<&str>) -> Request {
        Request {
            method: "POST".into(),
            content_length: len.map(str::to_owned),
            ..Request::default()
        }
    }

    #[test]
    fn the_contract_before_the_body() {
        let get = Request {
            method: "GET".into(),
            ..Request::default()
        };
        let r = precheck(&get, 10).unwrap_err();
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, vec![("Allow", "POST".to_owned())]);
        assert_eq!(precheck(&post(None), 10).unwrap_err().status, 411);
        assert_eq!(precheck(&post(Some("11")), 10).unwrap_err().status, 413);
        assert_eq!(precheck(&post(Some("x")), 10).unwrap_err().status, 400);
        assert_eq!(precheck(&post(Some("10")), 10), Ok(Some(10)));
        let chunked = Request {
            transfer_encoding: Some("chunked".into()),
            ..post(None)
        };
        assert_eq!(precheck(&chunked, 10), Ok(None));
        // `post` is case-sensitive (RFC 3875 §4.1.12).
        let lower = Request {
            method: "post".into(),
            ..post(Some("1"))
        };
        assert_eq!(precheck(&lower, 10).unwrap_err().status, 405);
    }

    #[test]
    fn bodies_are_read_exactly_and_bounded() {
        let data = b"0123456789abcdef";
        assert_eq!(read_body(&mut &data[..], Some(4), 100).unwrap(), b"0123");
        assert_eq!(
            read_body(&mut &data[..], Some(20), 100).unwrap_err().status,
            400
        );
        assert_eq!(read_body(&mut &data[..], None, 100).unwrap(), data);
        assert_eq!(read_body(&mut &data[..], None, 8).unwrap_err().status, 413);
    }

    #[test]
    fn media_types() {
        let with = |ct: &str| Request {
            content_type: Some(ct.into()),
            ..post(Some("1"))
        };
        assert!(acceptable(&with("application/tlsrpt+gzip"), b"x"));
        assert!(acceptable(
            &with("Application/TLSRPT+JSON; charset=utf-8"),
            b"x"
        ));
        assert!(acceptable(
            &with("application/octet-stream"),
            b"\x1f\x8b\x08"
        ));
        assert!(acceptable(&post(Some("1")), b" {\"a\":1}"));
        assert!(!acceptable(&with("text/html"), b"<html>"));
    }

    #[test]
    fn answers_never_leak_and_never_ack_early() {
        let e = answer(Err(Error::Panic("/var/spool/tlsrpt: boom".into())), 600);
        assert_eq!(e.status, 503);
        assert!(!e.body.contains("/var"));
        assert_eq!(e.headers, vec![("Retry-After", "600".to_owned())]);
        let mut out = Vec::new();
        Response::new(201, "stored 1 report(s)")
            .write(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("Status: 201 Created\r\nContent-Type: text/plain; charset=utf-8\r\n")
        );
        assert!(text.ends_with("\r\n\r\nstored 1 report(s)\n"));
    }
}
