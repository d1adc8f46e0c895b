//! stdin → message bytes, bounded.
//!
//! Guarantee: at most `max_message_size` bytes are held in memory. A larger message is
//! not an error and is not truncated: the caller gets the bytes read so far plus the
//! unread reader, and streams both to quarantine.

use std::io::{self, Read};

pub enum Input<R> {
    /// The whole message.
    Complete(Vec<u8>),
    /// More than the limit: the first `limit + 1` bytes, and the rest still unread.
    Oversized { head: Vec<u8>, rest: R },
}

pub fn read<R: Read>(mut r: R, limit: u64) -> io::Result<Input<R>> {
    let mut buf = Vec::with_capacity(64 * 1024);
    (&mut r)
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        Ok(Input::Oversized { head: buf, rest: r })
    } else {
        Ok(Input::Complete(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_keeps_everything() {
        let data = [b'x'; 100];
        match read(&data[..], 10).unwrap() {
            Input::Oversized { head, mut rest } => {
                let mut tail = Vec::new();
                rest.read_to_end(&mut tail).unwrap();
                assert_eq!(head.len() + tail.len(), 100);
            }
            Input::Complete(_) => panic!("not oversized"),
        }
        assert!(matches!(read(&data[..], 100).unwrap(), Input::Complete(b) if b.len() == 100));
    }
}
