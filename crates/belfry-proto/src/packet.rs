//! The Engine.IO v4 packet codec, with no I/O.
//!
//! A packet is a type digit followed by its data (`4hello`); over WebSocket a binary message is a
//! binary frame holding the raw bytes. Over HTTP long-polling, packets are joined with the record
//! separator `\x1e` and binary messages travel as `b<base64>` (see [`crate::payload`]).

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

use crate::{Str, sid::Sid};

/// The separator between packets in a polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// An Engine.IO v4 packet.
///
/// # Examples
///
/// ```
/// use belfry_proto::{Packet, Str};
///
/// let packet = Packet::decode_text(Str::from("4hello")).unwrap();
/// assert_eq!(packet, Packet::Message(Str::from("hello")));
/// assert_eq!(packet.encode_text().as_deref(), Some("4hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: sent by the server to open a session.
    Open(OpenPacket),
    /// `1`: closes the session.
    Close,
    /// `2`: a heartbeat ping (server to client in v4).
    Ping,
    /// `3`: the answer to a ping.
    Pong,
    /// `2probe`: the client's probe on a new WebSocket during an upgrade.
    PingProbe,
    /// `3probe`: the server's answer to the probe.
    PongProbe,
    /// `4<text>`: a text message.
    Message(Str),
    /// A binary message: a binary WebSocket frame, or `b<base64>` in a polling payload.
    Binary(Bytes),
    /// `5`: completes an upgrade to WebSocket.
    Upgrade,
    /// `6`: does nothing; used to end a pending long-poll during an upgrade.
    Noop,
    /// A text packet already encoded, type digit included (`4hello`), sent as it is: one
    /// encoding shared by every recipient of a broadcast, written to each WebSocket without a
    /// copy. Never produced by decoding.
    Encoded(Str),
}

/// The data of the open packet, sent once at the start of a session.
///
/// Serialized with exactly the keys Node's engine.io sends:
/// `{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPacket {
    /// The session id.
    pub sid: Sid,
    /// The transports the client may upgrade to (`["websocket"]`, or empty).
    pub upgrades: Vec<&'static str>,
    /// Milliseconds between two server pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong before closing.
    pub ping_timeout: u64,
    /// The largest payload, in bytes, the server accepts.
    pub max_payload: u64,
}

impl OpenPacket {
    /// Appends the JSON that `Serialize` gives, written directly (once per session: the
    /// serializer's machinery and its own buffer cost more than the text).
    fn write_json(&self, out: &mut String) {
        use std::fmt::Write as _;
        let sid = self.sid.as_str();
        if sid
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            let _ = write!(out, r#"{{"sid":"{sid}","upgrades":["#);
        } else {
            let sid = serde_json::to_string(sid).expect("a string always serializes");
            let _ = write!(out, r#"{{"sid":{sid},"upgrades":["#);
        }
        for (i, upgrade) in self.upgrades.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, r#""{upgrade}""#);
        }
        let _ = write!(
            out,
            r#"],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.ping_interval, self.ping_timeout, self.max_payload
        );
    }
}

/// Why a packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet has no type digit.
    #[error("empty packet")]
    Empty,
    /// The type is not one a client may send.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A text packet is not valid UTF-8.
    #[error("packet is not valid utf-8")]
    InvalidUtf8,
    /// A `b` packet of a polling payload is not valid base64.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
    /// An Engine.IO v3 payload's length prefix is missing, malformed, or does not match.
    #[error("invalid length in a v3 payload")]
    BadLength,
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one record of a polling payload).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Empty`] for an empty string, [`DecodeError::UnknownType`] for a type a
    /// client cannot send (including `0`, the open packet).
    pub fn decode_text(text: Str) -> Result<Packet, DecodeError> {
        match text.as_bytes().first() {
            None => Err(DecodeError::Empty),
            Some(b'4') => {
                let end = text.len();
                Ok(Packet::Message(text.into_slice(1..end)))
            }
            Some(&kind) => Packet::decode_control(kind, &text.as_bytes()[1..]),
        }
    }

    /// Decodes a packet of type `kind` other than a message, from the bytes after the type.
    /// Control packets carry no data Belfry keeps but `probe`, so nothing is copied or checked.
    pub(crate) fn decode_control(kind: u8, data: &[u8]) -> Result<Packet, DecodeError> {
        Ok(match kind {
            b'1' => Packet::Close,
            b'2' if data == b"probe" => Packet::PingProbe,
            b'2' => Packet::Ping,
            b'3' if data == b"probe" => Packet::PongProbe,
            b'3' => Packet::Pong,
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Encodes the packet as WebSocket text, or `None` for [`Packet::Binary`], which travels as a
    /// binary frame holding the raw bytes.
    pub fn encode_text(&self) -> Option<String> {
        let mut out = String::with_capacity(self.text_len_hint());
        if self.write_text(&mut out) {
            Some(out)
        } else {
            None
        }
    }

    /// Appends the polling form of the packet to `out`: the text encoding, or `b<base64>` for a
    /// binary message.
    pub fn encode_polling(&self, out: &mut String) {
        if let Packet::Binary(data) = self {
            out.push('b');
            base64::engine::general_purpose::STANDARD.encode_string(data, out);
        } else {
            self.write_text(out);
        }
    }

    /// Writes the text encoding; returns false (writing nothing) for binary.
    fn write_text(&self, out: &mut String) -> bool {
        match self {
            Packet::Open(open) => {
                out.push('0');
                open.write_json(out);
            }
            Packet::Close => out.push('1'),
            Packet::Ping => out.push('2'),
            Packet::Pong => out.push('3'),
            Packet::PingProbe => out.push_str("2probe"),
            Packet::PongProbe => out.push_str("3probe"),
            Packet::Message(text) => {
                out.push('4');
                out.push_str(text);
            }
            Packet::Upgrade => out.push('5'),
            Packet::Noop => out.push('6'),
            Packet::Encoded(text) => out.push_str(text),
            Packet::Binary(_) => return false,
        }
        true
    }

    /// About how many bytes the packet takes on the wire; used for the send queue's byte cap.
    pub fn wire_len(&self) -> usize {
        match self {
            Packet::Binary(data) => data.len(),
            _ => self.text_len_hint(),
        }
    }

    fn text_len_hint(&self) -> usize {
        match self {
            Packet::Message(text) => text.len() + 1,
            Packet::Encoded(text) => text.len(),
            Packet::Binary(data) => data.len().div_ceil(3) * 4 + 1,
            Packet::Open(_) => 128,
            Packet::PingProbe | Packet::PongProbe => 6,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packets_are_written_as_serde_writes_them() {
        let random = Sid::random();
        for sid in [random.as_str(), "a\"b\\c", "é\u{1}x", ""] {
            for upgrades in [vec![], vec!["websocket"]] {
                let open = OpenPacket {
                    sid: Sid::from(sid),
                    upgrades,
                    ping_interval: 25_000,
                    ping_timeout: 20_000,
                    max_payload: u64::MAX,
                };
                let mut text = String::new();
                open.write_json(&mut text);
                assert_eq!(text, serde_json::to_string(&open).unwrap(), "{sid:?}");
            }
        }
    }

    #[test]
    fn decode_every_client_type() {
        let cases = [
            ("1", Packet::Close),
            ("2", Packet::Ping),
            ("3", Packet::Pong),
            ("2probe", Packet::PingProbe),
            ("3probe", Packet::PongProbe),
            ("4", Packet::Message(Str::from(""))),
            ("4héllo", Packet::Message(Str::from("héllo"))),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
        ];
        for (text, expected) in cases {
            assert_eq!(Packet::decode_text(Str::from(text)), Ok(expected), "{text}");
        }
    }

    #[test]
    fn decode_rejects_bad_types() {
        assert_eq!(Packet::decode_text(Str::from("")), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text(Str::from("0{}")),
            Err(DecodeError::UnknownType(b'0'))
        );
        assert_eq!(
            Packet::decode_text(Str::from("abc")),
            Err(DecodeError::UnknownType(b'a'))
        );
        assert_eq!(
            Packet::decode_text(Str::from("9")),
            Err(DecodeError::UnknownType(b'9'))
        );
        assert_eq!(
            Packet::decode_text(Str::from("\u{7b5}E")),
            Err(DecodeError::UnknownType(0xde))
        );
    }

    #[test]
    fn open_packet_has_node_keys_in_order() {
        let open = Packet::Open(OpenPacket {
            sid: Sid::from("abc"),
            upgrades: vec!["websocket"],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        });
        assert_eq!(
            open.encode_text().as_deref(),
            Some(
                r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
            )
        );
    }

    #[test]
    fn encoded_packets_are_written_as_they_are() {
        let packet = Packet::Encoded(Str::from("42[\"ev\"]"));
        assert_eq!(packet.encode_text().as_deref(), Some("42[\"ev\"]"));
        let mut polling = String::new();
        packet.encode_polling(&mut polling);
        assert_eq!(polling, "42[\"ev\"]");
        assert_eq!(packet.wire_len(), 8);
    }

    #[test]
    fn binary_has_no_text_form_and_base64_polling_form() {
        let packet = Packet::Binary(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(packet.encode_text(), None);
        let mut out = String::new();
        packet.encode_polling(&mut out);
        assert_eq!(out, "bAQIDBA==");
    }
}
