//! Just enough RESP2 for a subscriber connection, without I/O: commands out, frames in.
//!
//! The subscriber speaks to Redis itself because the client crate's pub/sub connection has no
//! `SSUBSCRIBE` (sharded pub/sub) outside cluster mode; with its own reader the classic and the
//! sharded protocols share one subscriber.

use bytes::{Buf, Bytes, BytesMut};

/// The longest bulk string (a published message) accepted from Redis; past it the connection
/// is dropped and made again. Redis itself refuses messages over 512 MiB.
pub(crate) const MAX_BULK: usize = 64 * 1024 * 1024;
/// The most elements of one array; subscriber replies have three or four.
const MAX_ARRAY: usize = 1024;

/// One reply or push from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:3`.
    Integer(i64),
    /// `$5\r\nhello`; `None` for the null bulk string.
    Bulk(Option<Bytes>),
    /// `*3\r\n...`; `None` for the null array.
    Array(Option<Vec<Frame>>),
}

impl Frame {
    /// The bytes of a bulk or simple string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(Some(bytes)) => Some(bytes),
            Frame::Simple(text) => Some(text.as_bytes()),
            _ => None,
        }
    }
}

/// Redis sent something that is not RESP2, or over the limits.
#[derive(Debug, thiserror::Error)]
#[error("invalid reply from redis: {0}")]
pub(crate) struct RespError(&'static str);

/// `args` as a RESP command (an array of bulk strings), appended to `out`.
pub(crate) fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Takes one whole frame off the front of `buf`; `Ok(None)` while it is incomplete.
///
/// # Errors
///
/// The bytes are not RESP2, or a length is over the limits.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, RespError> {
    let mut cursor = 0;
    match frame_at(buf, &mut cursor, 0)? {
        Some(frame) => {
            buf.advance(cursor);
            Ok(Some(frame))
        }
        None => Ok(None),
    }
}

/// The frame starting at `*cursor`, moving the cursor past it.
fn frame_at(buf: &[u8], cursor: &mut usize, depth: usize) -> Result<Option<Frame>, RespError> {
    if depth > 4 {
        return Err(RespError("arrays nested too deep"));
    }
    let Some(line) = line_at(buf, *cursor)? else {
        return Ok(None);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(RespError("an empty line"));
    };
    let after_line = *cursor + line.len() + 2;
    let text = || String::from_utf8_lossy(rest).into_owned();
    let frame = match kind {
        b'+' => Frame::Simple(text()),
        b'-' => Frame::Error(text()),
        b':' => Frame::Integer(number(rest)?),
        b'$' => {
            let len = number(rest)?;
            if len < 0 {
                *cursor = after_line;
                return Ok(Some(Frame::Bulk(None)));
            }
            let len = usize::try_from(len).map_err(|_| RespError("a bulk length"))?;
            if len > MAX_BULK {
                return Err(RespError("a bulk string over the limit"));
            }
            let end = after_line + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError("a bulk string without its CRLF"));
            }
            *cursor = end + 2;
            return Ok(Some(Frame::Bulk(Some(Bytes::copy_from_slice(
                &buf[after_line..end],
            )))));
        }
        b'*' => {
            let len = number(rest)?;
            if len < 0 {
                *cursor = after_line;
                return Ok(Some(Frame::Array(None)));
            }
            let len = usize::try_from(len).map_err(|_| RespError("an array length"))?;
            if len > MAX_ARRAY {
                return Err(RespError("an array over the limit"));
            }
            let mut at = after_line;
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                match frame_at(buf, &mut at, depth + 1)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            *cursor = at;
            return Ok(Some(Frame::Array(Some(items))));
        }
        _ => return Err(RespError("an unknown frame type")),
    };
    *cursor = after_line;
    Ok(Some(frame))
}

/// The line starting at `start`, without its CRLF; `None` while it is incomplete.
fn line_at(buf: &[u8], start: usize) -> Result<Option<&[u8]>, RespError> {
    let rest = buf.get(start..).unwrap_or_default();
    match rest.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => Ok(Some(&rest[..end])),
        // A line (not a bulk body) never gets long: a header or a short status.
        None if rest.len() > 64 * 1024 => Err(RespError("a line over the limit")),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(RespError("not a number"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bulk(text: &str) -> Frame {
        Frame::Bulk(Some(Bytes::copy_from_slice(text.as_bytes())))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"SSUBSCRIBE", b"socket.io#/#"]);
        assert_eq!(out, b"*2\r\n$10\r\nSSUBSCRIBE\r\n$12\r\nsocket.io#/#\r\n");
    }

    #[test]
    fn a_push_is_read_whole_and_only_when_whole() {
        let wire = b"*3\r\n$8\r\nsmessage\r\n$3\r\nch1\r\n$5\r\nh\r\nlo\r\n:1\r\n";
        for cut in 0..wire.len() - 4 {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(parse(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing taken while incomplete");
        }
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Frame::Array(Some(vec![
                bulk("smessage"),
                bulk("ch1"),
                bulk("h\r\nlo")
            ])))
        );
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Integer(1)));
        assert!(buf.is_empty());
    }

    #[test]
    fn statuses_errors_and_nulls() {
        let mut buf = BytesMut::from(&b"+PONG\r\n-ERR nope\r\n$-1\r\n*-1\r\n"[..]);
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Simple("PONG".into())));
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Frame::Error("ERR nope".into()))
        );
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Bulk(None)));
        assert_eq!(parse(&mut buf).unwrap(), Some(Frame::Array(None)));
    }

    #[test]
    fn hostile_lengths_are_refused_not_allocated() {
        for wire in [
            &b"$99999999999\r\n"[..],
            b"*99999999\r\n",
            b"$abc\r\n",
            b"?what\r\n",
            b"$3\r\nabcXY",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(
                parse(&mut buf).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let mut endless = BytesMut::from(&vec![b'+'; 70 * 1024][..]);
        assert!(parse(&mut endless).is_err());
    }
}
