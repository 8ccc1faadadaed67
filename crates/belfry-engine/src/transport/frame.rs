//! The WebSocket frame codec (RFC 6455 §5, with RFC 7692's compressed messages): frames in,
//! messages and the server's answers out. No I/O and no async: [`super::conn`] moves the bytes.
//!
//! What the server must enforce on what it reads is enforced here: masked client frames,
//! known opcodes, no reserved bits (but the compression bit on a message's first frame where
//! permessage-deflate was agreed), control frames whole and at most 125 bytes, continuations only
//! inside a fragmented message, messages at most the payload limit (checked on the frame header,
//! before the payload is read), text in UTF-8 (a fragmented text fails at the first fragment that
//! cannot begin UTF-8), close frames with a valid code and a UTF-8 reason. A ping is answered with
//! a pong, a close frame with a close frame.
//!
//! A violation's close code: 1002 for the protocol, 1007 for a text that is not UTF-8 (or a
//! compressed message that is not deflate data), 1009 for a message over the limit. When a frame
//! breaks several rules, the protocol's checks come before the size's, as in Node's `ws`.

use bytes::{BufMut, Bytes, BytesMut};

use super::deflate::{self, Compressor};
use crate::Str;

#[cfg(test)]
mod autobahn;
#[cfg(test)]
mod differential;
#[cfg(any(test, fuzzing))]
pub(crate) mod oracle;
#[cfg(test)]
pub(crate) mod tests;

/// A message from the client.
pub(crate) enum Incoming {
    Text(Str),
    Binary(Bytes),
}

/// Why reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The client sent a close frame (answered).
    Closed,
    /// The stream ended or failed: nothing more can be written either.
    Gone,
    /// The client broke the protocol: the connection is closed with this code.
    Violation(u16),
}

const PROTOCOL: ReadEnd = ReadEnd::Violation(1002);
const INVALID_DATA: ReadEnd = ReadEnd::Violation(1007);
const TOO_BIG: ReadEnd = ReadEnd::Violation(1009);

/// Frame opcodes.
pub(crate) mod opcode {
    pub(crate) const CONTINUATION: u8 = 0;
    pub(crate) const TEXT: u8 = 1;
    pub(crate) const BINARY: u8 = 2;
    pub(crate) const CLOSE: u8 = 8;
    pub(crate) const PING: u8 = 9;
    pub(crate) const PONG: u8 = 10;
}

/// A frame header (RFC 6455 §5.2).
pub(super) struct Header {
    pub(super) fin: bool,
    pub(super) rsv1: bool,
    /// RSV2 or RSV3.
    pub(super) rsv23: bool,
    pub(super) opcode: u8,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) len: u64,
    /// The header's own length.
    pub(super) size: usize,
}

/// The header at the start of `buf`; `None` until all of it is there.
pub(super) fn parse_header(buf: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, mut size) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        len => (u64::from(len), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = buf.get(size..size + 4)?.try_into().ok()?;
        size += 4;
        Some(key)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv23: b0 & 0x30 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        size,
    })
}

/// Writes the header of an unmasked (server) frame: FIN, RSV1 as given, the opcode, the length.
pub(crate) fn put_header(out: &mut impl BufMut, rsv1: bool, opcode: u8, len: usize) {
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xffff => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// Unmasks `data` in place, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes(word.try_into().expect("chunks of eight")) ^ key;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Whether a close frame may carry `code`: RFC 6455 §7.4 and the IANA registry, as Node's `ws`
/// (1012 to 1014 included).
fn is_sendable_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented or compressed message being collected.
struct Partial {
    /// 1 (text) or 2 (binary).
    opcode: u8,
    compressed: bool,
    /// The payload so far, unmasked (still compressed when `compressed`).
    data: Vec<u8>,
    /// How much of an uncompressed text's `data` is known to be UTF-8 (up to a character's
    /// start).
    checked: usize,
}

impl Partial {
    /// Checks the UTF-8 of an uncompressed text collected so far: what arrived must be able to
    /// begin UTF-8 (its last character may still be incomplete).
    fn check_text(&mut self) -> Result<(), ReadEnd> {
        if self.opcode != opcode::TEXT || self.compressed {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.checked..]) {
            Ok(_) => self.checked = self.data.len(),
            Err(error) if error.error_len().is_none() => self.checked += error.valid_up_to(),
            Err(_) => return Err(INVALID_DATA),
        }
        Ok(())
    }
}

/// The reading half: takes frames, collects fragmented and compressed messages.
pub(crate) struct FrameReader {
    /// The largest message (and data frame), in bytes.
    max: usize,
    /// Whether permessage-deflate was agreed (RSV1 marks a compressed message).
    inflate: bool,
    partial: Option<Partial>,
    /// Reading ended; every later read ends the same way.
    pub(super) ended: Option<ReadEnd>,
}

/// The writing half's state: frames for the client not written yet, and the answers to the
/// client's control frames.
pub(crate) struct Outbox {
    /// Frames for the client (with permessage-deflate, already compressed). Holds no
    /// allocation when idle.
    pub(super) out: BytesMut,
    pub(super) compressor: Option<Box<Compressor>>,
    /// The answer to the latest ping, while earlier frames wait to be written: a client that
    /// pings without reading gets one pong when it reads again, not one per ping (RFC 6455
    /// §5.5.3 allows it), so what waits stays bounded.
    pub(super) pong: Option<Box<[u8]>>,
    close_sent: bool,
}

impl Outbox {
    /// An empty outbox; with `compressor`, data frames are compressed as it decides.
    pub(crate) fn new(compressor: Option<Compressor>) -> Self {
        Outbox {
            out: BytesMut::new(),
            compressor: compressor.map(Box::new),
            pong: None,
            close_sent: false,
        }
    }

    /// Whether frames wait to be written.
    pub(crate) fn has_unwritten(&self) -> bool {
        !self.out.is_empty() || self.pong.is_some()
    }

    /// Answers a ping: at once when nothing waits, else the pong replaces any pong waiting.
    fn pong(&mut self, payload: &[u8]) {
        if self.out.is_empty() {
            self.control(opcode::PONG, payload);
        } else {
            self.pong = Some(payload.into());
        }
    }

    /// Moves the pong waiting (if any) behind what is queued; true if there was one.
    pub(super) fn queue_pong(&mut self) -> bool {
        match self.pong.take() {
            Some(payload) => {
                self.control(opcode::PONG, &payload);
                true
            }
            None => false,
        }
    }

    /// Appends a control frame (not compressed), after everything queued before it.
    fn control(&mut self, opcode: u8, payload: &[u8]) {
        put_header(&mut self.out, false, opcode, payload.len());
        self.out.extend_from_slice(payload);
    }

    /// Appends a close frame, once: with `code`, or empty. A pong still waiting is dropped:
    /// nothing follows a close frame.
    pub(crate) fn close(&mut self, code: Option<u16>) {
        self.pong = None;
        if !std::mem::replace(&mut self.close_sent, true) {
            match code {
                Some(code) => self.control(opcode::CLOSE, &code.to_be_bytes()),
                None => self.control(opcode::CLOSE, &[]),
            }
        }
    }
}

impl FrameReader {
    /// A reader of messages up to `max` bytes; `inflate` when permessage-deflate was agreed.
    pub(crate) fn new(max: usize, inflate: bool) -> Self {
        FrameReader {
            max,
            inflate,
            partial: None,
            ended: None,
        }
    }

    /// Forgets a message being collected (reading ended).
    pub(super) fn clear(&mut self) {
        self.partial = None;
    }

    /// Takes the whole frames at the start of `buf` (unmasking their payloads in place):
    /// answers control frames into `outbox`, hands messages to `on_message`. Returns how many
    /// bytes it took and whether `on_message` asked to stop; or how reading ends.
    pub(crate) fn frames(
        &mut self,
        outbox: &mut Outbox,
        buf: &mut [u8],
        on_message: &mut impl FnMut(Incoming) -> bool,
    ) -> Result<(usize, bool), ReadEnd> {
        let mut pos = 0;
        loop {
            let Some(head) = parse_header(&buf[pos..]) else {
                return Ok((pos, false));
            };
            let len = self.check(&head)?;
            // The header is in `buf`: `pos + head.size` fits; `len` is at most the limit, which
            // a configuration may set near `usize::MAX`.
            let start = pos + head.size;
            let end = start.checked_add(len).ok_or(TOO_BIG)?;
            let Some(payload) = buf.get_mut(start..end) else {
                return Ok((pos, false));
            };
            pos = end;
            unmask(
                payload,
                head.mask.expect("checked: client frames are masked"),
            );
            match head.opcode {
                opcode::PING => outbox.pong(payload),
                opcode::PONG => {}
                opcode::CLOSE => return Err(close(outbox, payload)),
                opcode => {
                    let message = if head.fin && opcode != opcode::CONTINUATION && !head.rsv1 {
                        // The common case: a whole message in one frame.
                        message(opcode, copy(payload))?
                    } else {
                        let partial = self.partial.get_or_insert_with(|| Partial {
                            opcode,
                            compressed: head.rsv1,
                            data: Vec::new(),
                            checked: 0,
                        });
                        partial.data.extend_from_slice(payload);
                        if !head.fin {
                            partial.check_text()?;
                            continue;
                        }
                        let Partial {
                            opcode,
                            compressed,
                            data,
                            ..
                        } = self.partial.take().expect("inserted above");
                        let data = if compressed {
                            deflate::inflate(&data, self.max).map_err(|e| match e {
                                deflate::InflateError::TooLarge => TOO_BIG,
                                deflate::InflateError::Invalid => INVALID_DATA,
                            })?
                        } else {
                            data
                        };
                        message(opcode, data)?
                    };
                    if !on_message(message) {
                        return Ok((pos, true));
                    }
                }
            }
        }
    }

    /// Checks a frame's header against the protocol and the limit; returns its payload length.
    fn check(&self, head: &Header) -> Result<usize, ReadEnd> {
        let control = head.opcode >= opcode::CLOSE;
        let known = matches!(head.opcode, 0..=2 | 8..=10);
        let first_data = matches!(head.opcode, opcode::TEXT | opcode::BINARY);
        if head.mask.is_none()
            || head.rsv23
            || !known
            || (head.rsv1 && !(self.inflate && first_data))
        {
            return Err(PROTOCOL);
        }
        if control {
            // Not part of a message: never counted against the limit.
            return match head.len {
                0..=125 if head.fin => Ok(head.len as usize),
                _ => Err(PROTOCOL),
            };
        }
        if (head.opcode == opcode::CONTINUATION) != self.partial.is_some() {
            // A continuation outside a fragmented message, or a new message inside one.
            return Err(PROTOCOL);
        }
        let collected = self.partial.as_ref().map_or(0, |p| p.data.len());
        match usize::try_from(head.len) {
            Ok(len) if len.saturating_add(collected) <= self.max => Ok(len),
            _ => Err(TOO_BIG),
        }
    }
}

/// A whole message's payload as a message: text checked for UTF-8.
fn message(opcode: u8, data: impl Into<Bytes>) -> Result<Incoming, ReadEnd> {
    let data = data.into();
    if opcode == opcode::TEXT {
        Str::try_from(data)
            .map(Incoming::Text)
            .map_err(|_| INVALID_DATA)
    } else {
        Ok(Incoming::Binary(data))
    }
}

/// The most bytes a message copied with its reference count in one allocation holds.
const SHORT: usize = 111;

/// A short message's bytes, in the allocation that `Bytes::from_owner` makes for its
/// reference count.
struct Short {
    len: u8,
    data: [u8; SHORT],
}

impl AsRef<[u8]> for Short {
    fn as_ref(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// A copy of `payload` that is cheap to share. A `Bytes` made from a `Vec` allocates its
/// reference count when first shared (the decoder shares every message: its arguments are
/// slices of it), so a short message is copied into one allocation with its count instead.
fn copy(payload: &[u8]) -> Bytes {
    match u8::try_from(payload.len()) {
        Ok(len) if payload.len() <= SHORT => {
            let mut short = Short {
                len,
                data: [0; SHORT],
            };
            short.data[..payload.len()].copy_from_slice(payload);
            Bytes::from_owner(short)
        }
        _ => Bytes::copy_from_slice(payload),
    }
}

/// Acts on the client's close frame: a valid one is answered with its code, an invalid one is
/// a protocol violation.
fn close(outbox: &mut Outbox, payload: &[u8]) -> ReadEnd {
    match payload {
        [] => {
            outbox.close(None);
            ReadEnd::Closed
        }
        [_] => PROTOCOL,
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !is_sendable_code(code) {
                PROTOCOL
            } else if std::str::from_utf8(reason).is_err() {
                INVALID_DATA
            } else {
                outbox.close(Some(code));
                ReadEnd::Closed
            }
        }
    }
}
