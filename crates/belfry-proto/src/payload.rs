//! The Engine.IO v4 long-polling payload codec, with no I/O.
//!
//! A payload is one or more packets joined by the record separator `\x1e`; a binary message is the
//! letter `b` followed by its base64 encoding:
//!
//! ```
//! use belfry_proto::payload::{decode, encode};
//! use belfry_proto::{Packet, Str};
//! use bytes::Bytes;
//!
//! let packets = vec![
//!     Packet::Message(Str::from("hello")),
//!     Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
//! ];
//! let payload = encode(&packets);
//! assert_eq!(payload, "4hello\x1ebAQIDBA==");
//!
//! let decoded: Result<Vec<_>, _> = decode(Bytes::from(payload)).collect();
//! assert_eq!(decoded.unwrap(), packets);
//! ```

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::Bytes;

use crate::{
    Str,
    packet::{DecodeError, Packet, RECORD_SEPARATOR},
};

/// Standard base64, accepting input with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Splits a polling body into packets, lazily and without copying text.
///
/// The iterator yields one `Result` per record; an empty body yields one
/// [`DecodeError::Empty`]. Decoding is linear in the body's length.
pub fn decode(body: Bytes) -> Decoder {
    Decoder {
        body,
        pos: 0,
        done: false,
    }
}

/// Joins packets into a polling payload.
pub fn encode(packets: &[Packet]) -> String {
    let capacity = packets.iter().map(|p| p.wire_len() * 4 / 3 + 2).sum();
    let mut out = String::with_capacity(capacity);
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(char::from(RECORD_SEPARATOR));
        }
        packet.encode_polling(&mut out);
    }
    out
}

/// The iterator returned by [`decode`].
#[derive(Debug)]
pub struct Decoder {
    body: Bytes,
    pos: usize,
    done: bool,
}

impl Iterator for Decoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.body[self.pos..];
        let end = match rest.iter().position(|&b| b == RECORD_SEPARATOR) {
            Some(i) => self.pos + i,
            None => {
                self.done = true;
                self.body.len()
            }
        };
        let start = self.pos;
        self.pos = end + 1;
        Some(self.record(start, end))
    }
}

impl Decoder {
    /// Decodes `body[start..end]`; only a message's text is sliced out (no copy) and checked
    /// for UTF-8.
    fn record(&self, start: usize, end: usize) -> Result<Packet, DecodeError> {
        let Some(&kind) = self.body[start..end].first() else {
            return Err(DecodeError::Empty);
        };
        let data = start + 1..end;
        match kind {
            b'b' => BASE64
                .decode(&self.body[data])
                .map(|bytes| Packet::Binary(Bytes::from(bytes)))
                .map_err(|_| DecodeError::InvalidBase64),
            b'4' => Str::try_from(self.body.slice(data))
                .map(Packet::Message)
                .map_err(|_| DecodeError::InvalidUtf8),
            kind => Packet::decode_control(kind, &self.body[data]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &'static [u8]) -> Vec<Result<Packet, DecodeError>> {
        decode(Bytes::from_static(body)).collect()
    }

    #[test]
    fn splits_records() {
        assert_eq!(
            decode_all(b"4hello\x1e2\x1e4world"),
            vec![
                Ok(Packet::Message(Str::from("hello"))),
                Ok(Packet::Ping),
                Ok(Packet::Message(Str::from("world"))),
            ]
        );
    }

    #[test]
    fn bad_records_are_errors() {
        assert_eq!(decode_all(b""), vec![Err(DecodeError::Empty)]);
        assert_eq!(
            decode_all(b"abc"),
            vec![Err(DecodeError::UnknownType(b'a'))]
        );
        assert_eq!(decode_all(b"b!!!"), vec![Err(DecodeError::InvalidBase64)]);
        assert_eq!(decode_all(b"4\xff"), vec![Err(DecodeError::InvalidUtf8)]);
        assert_eq!(
            decode_all(b"4a\x1e\x1e4b"),
            vec![
                Ok(Packet::Message(Str::from("a"))),
                Err(DecodeError::Empty),
                Ok(Packet::Message(Str::from("b"))),
            ]
        );
    }

    #[test]
    fn binary_with_or_without_padding() {
        let expected = Ok(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])));
        assert_eq!(decode_all(b"bAQIDBA=="), vec![expected.clone()]);
        assert_eq!(decode_all(b"bAQIDBA"), vec![expected]);
    }

    #[test]
    fn many_tiny_packets_decode_in_one_pass() {
        let body: Vec<u8> = std::iter::repeat_n(*b"4\x1e", 500_000).flatten().collect();
        let body = Bytes::from(body[..body.len() - 1].to_vec());
        let n = decode(body).filter(|p| p.is_ok()).count();
        assert_eq!(n, 500_000);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn packet() -> impl Strategy<Value = Packet> {
            prop_oneof![
                Just(Packet::Close),
                Just(Packet::Ping),
                Just(Packet::Pong),
                Just(Packet::PingProbe),
                Just(Packet::PongProbe),
                Just(Packet::Upgrade),
                Just(Packet::Noop),
                "[^\x1e]*".prop_map(|s| Packet::Message(Str::from(s))),
                proptest::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|v| Packet::Binary(Bytes::from(v))),
            ]
        }

        proptest! {
            #[test]
            fn encode_then_decode_is_identity(packets in proptest::collection::vec(packet(), 1..8)) {
                let payload = encode(&packets);
                let decoded: Result<Vec<_>, _> = decode(Bytes::from(payload)).collect();
                prop_assert_eq!(decoded, Ok(packets));
            }

            #[test]
            fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
                for _ in decode(Bytes::from(body)) {}
            }
        }
    }
}
