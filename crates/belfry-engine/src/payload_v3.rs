//! The Engine.IO v3 long-polling payload codec (socket.io 2.x clients, behind
//! [`EngineConfigBuilder::allow_eio3`](crate::EngineConfigBuilder::allow_eio3)), with no I/O.
//!
//! Text payloads prefix each packet with its length in UTF-16 code units and a colon
//! (`6:4hello2:40`), binary messages as `b4<base64>`; the empty payload is `0:`. A client that
//! handles binary (no `b64=1` in its query) gets payloads holding binary messages in the binary
//! framing instead, as `application/octet-stream`: per packet, `0` (text) or `1` (binary), the
//! decimal digits of its length in bytes one byte each, `0xFF`, then the packet (UTF-8 text, or
//! the type byte `4` and the bytes).

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    Str,
    packet::{DecodeError, Packet},
};

/// The message type's byte in front of binary data.
const MESSAGE: u8 = 4;

/// The most length digits Node reads before giving up on a binary payload.
const MAX_DIGITS: usize = 310;

/// The body and content type of a response carrying `packets`; `binary`: the client handles
/// binary payloads (its query has no `b64`).
pub(crate) fn encode(packets: &[Packet], binary: bool) -> (Bytes, &'static str) {
    if binary && packets.iter().any(|p| matches!(p, Packet::Binary(_))) {
        return (encode_binary(packets), "application/octet-stream");
    }
    if packets.is_empty() {
        return (Bytes::from_static(b"0:"), TEXT);
    }
    let mut out = String::new();
    for packet in packets {
        let text = text_of(packet);
        let units: usize = text.chars().map(char::len_utf16).sum();
        out.push_str(&units.to_string());
        out.push(':');
        out.push_str(&text);
    }
    (Bytes::from(out), TEXT)
}

const TEXT: &str = "text/plain; charset=UTF-8";

/// A packet's text form in a v3 text payload: binary as `b4<base64>`.
fn text_of(packet: &Packet) -> String {
    match packet {
        Packet::Binary(data) => {
            let mut out = String::from("b4");
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut out);
            out
        }
        other => other.encode_text().unwrap_or_default(),
    }
}

fn encode_binary(packets: &[Packet]) -> Bytes {
    let mut out = BytesMut::new();
    let mut put = |kind: u8, type_byte: Option<u8>, data: &[u8]| {
        let len = data.len() + usize::from(type_byte.is_some());
        out.put_u8(kind);
        out.extend(len.to_string().bytes().map(|digit| digit - b'0'));
        out.put_u8(0xff);
        out.extend(type_byte);
        out.extend_from_slice(data);
    };
    for packet in packets {
        match packet {
            Packet::Binary(data) => put(1, Some(MESSAGE), data),
            other => put(0, None, other.encode_text().unwrap_or_default().as_bytes()),
        }
    }
    out.freeze()
}

/// The packets of a POST body; `binary`: its content type is `application/octet-stream`.
///
/// # Errors
///
/// A malformed payload (Node then drops the whole payload; Belfry closes the session with
/// "parse error", as for v4).
pub(crate) fn decode(body: Bytes, binary: bool) -> Result<Vec<Packet>, DecodeError> {
    if binary {
        decode_binary(body)
    } else {
        decode_text(body)
    }
}

fn decode_text(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    let text = Str::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?;
    let mut packets = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let colon = text[pos..].find(':').ok_or(DecodeError::Empty)? + pos;
        let units: usize = text[pos..colon]
            .parse()
            .map_err(|_| DecodeError::BadLength)?;
        // The packet is the next `units` UTF-16 code units.
        let start = colon + 1;
        let mut end = start;
        let mut taken = 0;
        for c in text[start..].chars() {
            if taken >= units {
                break;
            }
            taken += c.len_utf16();
            end += c.len_utf8();
        }
        if taken != units {
            return Err(DecodeError::BadLength);
        }
        if end > start {
            packets.push(decode_one(text.slice(start..end))?);
        }
        pos = end;
    }
    if packets.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(packets)
}

/// One packet of a text payload: text, or `b4<base64>`.
fn decode_one(text: Str) -> Result<Packet, DecodeError> {
    match text.strip_prefix('b') {
        Some(rest) => {
            let data = rest
                .strip_prefix('4')
                .ok_or(DecodeError::UnknownType(b'b'))?;
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(|data| Packet::Binary(Bytes::from(data)))
                .map_err(|_| DecodeError::InvalidBase64)
        }
        None => Packet::decode_text(text),
    }
}

fn decode_binary(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    let mut packets = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let is_text = match body[pos] {
            0 => true,
            1 => false,
            _ => return Err(DecodeError::BadLength),
        };
        pos += 1;
        let mut len = 0usize;
        let mut digits = 0;
        loop {
            let digit = *body.get(pos).ok_or(DecodeError::BadLength)?;
            pos += 1;
            if digit == 0xff {
                break;
            }
            digits += 1;
            if digit > 9 || digits > MAX_DIGITS {
                return Err(DecodeError::BadLength);
            }
            len = len
                .checked_mul(10)
                .and_then(|len| len.checked_add(usize::from(digit)))
                .ok_or(DecodeError::BadLength)?;
        }
        let end = pos.checked_add(len).filter(|end| *end <= body.len());
        let data = body.slice(pos..end.ok_or(DecodeError::BadLength)?);
        pos += len;
        packets.push(if is_text {
            Packet::decode_text(Str::try_from(data).map_err(|_| DecodeError::InvalidUtf8)?)?
        } else {
            match data.first() {
                Some(&MESSAGE) => Packet::Binary(data.slice(1..)),
                Some(&kind) => return Err(DecodeError::UnknownType(kind)),
                None => return Err(DecodeError::Empty),
            }
        });
    }
    if packets.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both framings of one payload, as the module docs describe them.
    #[test]
    fn text_and_binary_framings() {
        let packets = [
            Packet::Message(Str::from("é")),
            Packet::Binary(Bytes::from_static(&[1])),
        ];
        let (text, _) = encode(&packets, false);
        assert_eq!(&text[..], b"2:4\xc3\xa96:b4AQ==");
        let (binary, content_type) = encode(&packets, true);
        assert_eq!(content_type, "application/octet-stream");
        assert_eq!(&binary[..], b"\x00\x03\xff4\xc3\xa9\x01\x02\xff\x04\x01");
        for body in [(text, false), (binary, true)] {
            assert_eq!(decode(body.0, body.1).unwrap(), packets);
        }
    }

    #[test]
    fn text_lengths_count_utf16_units() {
        let packets = [
            Packet::Message(Str::from("😀")),
            Packet::Ping,
            Packet::Message(Str::from("")),
        ];
        let (body, content_type) = encode(&packets, true);
        assert_eq!(content_type, TEXT);
        assert_eq!(std::str::from_utf8(&body).unwrap(), "3:4😀1:21:4");
        assert_eq!(decode(body, false).unwrap(), packets);
        assert_eq!(&encode(&[], false).0[..], b"0:");
    }

    #[test]
    fn malformed_payloads_are_errors() {
        for body in [
            &b""[..],
            b"0:",
            b"5:4ab",
            b"x:4",
            b"2:4",
            b"3:b5AQ",
            b"3:b4!",
            b"99999999999999999999999:4",
            b"\xff\xfe",
        ] {
            assert!(decode(Bytes::from_static(body), false).is_err(), "{body:?}");
        }
        let long_length = [&[0u8][..], &[9; 400], &[0xff]].concat();
        for body in [
            &b"\x02\x01\xff4"[..],
            b"\x00\x05\xff4",
            b"\x00\x01",
            b"\x01\x01\xff\x05",
            b"\x01\x00\xff",
            b"\x00\x0a\xff4",
            &long_length,
        ] {
            assert!(
                decode(Bytes::copy_from_slice(body), true).is_err(),
                "{body:?}"
            );
        }
    }
}
