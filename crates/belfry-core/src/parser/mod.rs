//! The Socket.IO v5 packet model and its default (JSON) parser, with no I/O.
//!
//! A packet travels as one Engine.IO text message (its data, after the engine's `4`),
//! `<type>[<n>-][<nsp>,][<ack id>][<json>]`,
//! followed by `n` Engine.IO binary messages when it carries binary attachments (each buffer of
//! the arguments is replaced by `{"_placeholder":true,"num":i}` in the JSON):
//!
//! ```
//! use belfry_core::parser::{Decoder, Packet, PacketData};
//! use belfry_core::Str;
//! use bytes::Bytes;
//!
//! let mut decoder = Decoder::default();
//! // The Engine.IO message `451-/chat,7[...]` carries the Socket.IO text `51-/chat,7[...]`.
//! let text = Str::from(r#"51-/chat,7["file",{"_placeholder":true,"num":0}]"#);
//! assert!(decoder.decode_text(text).unwrap().is_none()); // waits for its attachment
//! let packet = decoder.decode_binary(Bytes::from_static(b"\x01\x02")).unwrap().unwrap();
//! assert_eq!(packet.ns, "/chat");
//! let PacketData::Event { payload, ack } = &packet.data else { panic!() };
//! assert_eq!(*ack, Some(7));
//! assert_eq!(payload.attachments, vec![Bytes::from_static(b"\x01\x02")]);
//!
//! // Encoding gives the same text back, and the attachments to send after it.
//! assert_eq!(packet.encode(), r#"51-/chat,7["file",{"_placeholder":true,"num":0}]"#);
//! ```

mod decode;
mod encode;
mod json;
pub mod msgpack;

pub use decode::{Decoder, ParseError};
pub use encode::write_header;

use std::{borrow::Cow, sync::Arc};

use bytes::Bytes;

use crate::Str;

/// Event names that no packet may carry: Node's server refuses to emit them and its parser
/// refuses to receive them.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// True if `name` is reserved (see [`RESERVED_EVENTS`]).
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// How packets travel (Node's `parser` option); client and server must agree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parser {
    /// `socket.io-parser`: JSON text, binary as placeholders followed by binary messages.
    #[default]
    Default,
    /// `socket.io-msgpack-parser` 3.x: one msgpack binary message per packet ([`msgpack`]).
    Msgpack,
}

/// The most binary attachments one packet may declare by default (Node's `maxAttachments`).
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

/// A Socket.IO v5 packet: a namespace and what is sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The namespace, `/` by default.
    pub ns: Str,
    /// The type and content.
    pub data: PacketData,
}

/// The type of a packet and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketData {
    /// `0`: join a namespace. From a client, the optional auth object; from the server,
    /// `{"sid":"..."}`.
    Connect(Option<Str>),
    /// `1`: leave a namespace.
    Disconnect,
    /// `2` (or `5` with attachments): an event, `["name", ...args]`, with an ack id when the
    /// sender waits for an answer.
    Event {
        /// The event name and its arguments.
        payload: Payload,
        /// The ack id, if an answer is expected.
        ack: Option<u64>,
    },
    /// `3` (or `6` with attachments): the answer to an event, `[...args]`.
    Ack {
        /// The answer's arguments.
        payload: Payload,
        /// The ack id being answered.
        ack: u64,
    },
    /// `4`: a refused namespace connection, `{"message":..,"data":..}` (or a string).
    ConnectError(Str),
}

/// A JSON array with its binary attachments.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The JSON array, with `{"_placeholder":true,"num":i}` where attachment `i` belongs.
    pub json: Str,
    /// The binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
    /// The array's elements as the [`Decoder`] split them while checking the packet, kept with
    /// the text they came from: used while `json` is still that text, so that the JSON of an
    /// incoming packet is scanned once.
    split: Option<Elements>,
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.attachments == other.attachments
    }
}

impl Eq for Payload {}

impl Payload {
    /// A payload without attachments.
    ///
    /// The caller vouches that `json` is a JSON array; packets from the [`Decoder`] are checked.
    pub fn json(json: impl Into<Str>) -> Payload {
        Payload::new(json, Vec::new())
    }

    /// A payload with attachments.
    ///
    /// The caller vouches that `json` is a JSON array with a placeholder for each attachment.
    pub fn new(json: impl Into<Str>, attachments: Vec<Bytes>) -> Payload {
        Payload {
            json: json.into(),
            attachments,
            split: None,
        }
    }

    /// A payload the decoder checked, with its elements.
    fn decoded(json: Str, elements: Elements) -> Payload {
        Payload {
            split: Some(elements),
            ..Payload::json(json)
        }
    }

    /// The elements of the array, unparsed. Free for a payload from the [`Decoder`], whose
    /// check split them already.
    ///
    /// # Errors
    ///
    /// [`ParseError::InvalidPayload`] if `json` is not a JSON array (never for a decoded
    /// packet).
    pub fn elements(&self) -> Result<Elements, ParseError> {
        match &self.split {
            // The cached split holds its text alive, so an equal address is the same text.
            Some(split)
                if split.json.as_ptr() == self.json.as_ptr()
                    && split.json.len() == self.json.len() =>
            {
                Ok(split.clone())
            }
            _ => Elements::parse(self.json.clone()),
        }
    }

    /// For an event: its name (a number is given as its JSON text) and its arguments. A name
    /// without escapes shares the payload's text.
    ///
    /// # Errors
    ///
    /// If the payload is not a non-empty array starting with a string or a number (never for a
    /// packet the [`Decoder`] returned).
    pub fn event(&self) -> Result<(Str, Elements), ParseError> {
        let elements = self.elements()?;
        let &(start, end) = elements.spans().first().ok_or(ParseError::InvalidPayload)?;
        let raw = elements.text((start, end));
        let name = match event_name_ref(raw)? {
            // A string's contents (between its quotes), or a number as it is.
            Cow::Borrowed(plain) => {
                let from = start as usize + usize::from(raw.starts_with('"'));
                elements.json.slice(from..from + plain.len())
            }
            Cow::Owned(unescaped) => Str::from(unescaped),
        };
        Ok((name, elements.skip(1)))
    }
}

/// Elements of a JSON array (an event's arguments, an ack's answer), each as the JSON text it
/// was written with: checked, not parsed. They share the array's text (a [`Str`]); up to four
/// elements are kept without allocating. Cheap to clone.
///
/// ```
/// use belfry_core::parser::Elements;
///
/// let elements = Elements::parse(r#"["chat", {"text": "hi"}, 7]"#).unwrap();
/// assert_eq!(elements.len(), 3);
/// assert_eq!(elements.get(1), Some(r#"{"text": "hi"}"#));
/// let args = elements.skip(1);
/// assert_eq!(args.iter().collect::<Vec<_>>(), [r#"{"text": "hi"}"#, "7"]);
/// assert!(Elements::parse("[1,]").is_err());
/// ```
#[derive(Clone, Default)]
pub struct Elements {
    json: Str,
    spans: Spans,
    skip: usize,
}

/// Where each element lies in the text.
#[derive(Clone)]
enum Spans {
    Inline {
        len: u8,
        spans: [(u32, u32); Spans::INLINE],
    },
    Shared(Arc<[(u32, u32)]>),
}

impl Default for Spans {
    fn default() -> Self {
        Spans::Inline {
            len: 0,
            spans: [(0, 0); Spans::INLINE],
        }
    }
}

impl Spans {
    /// An event's name and three arguments.
    const INLINE: usize = 4;

    fn as_slice(&self) -> &[(u32, u32)] {
        match self {
            Spans::Inline { len, spans } => &spans[..usize::from(*len)],
            Spans::Shared(spans) => spans,
        }
    }
}

impl Elements {
    /// Checks and splits a JSON array.
    ///
    /// # Errors
    ///
    /// [`ParseError::InvalidPayload`] if `json` is not a JSON array (or is 4 GiB or more).
    pub fn parse(json: impl Into<Str>) -> Result<Elements, ParseError> {
        Elements::split(json.into()).map(|(elements, _)| elements)
    }

    /// [`Elements::parse`], also saying whether a string is exactly `_placeholder`.
    pub(crate) fn split(json: Str) -> Result<(Elements, bool), ParseError> {
        let mut inline = [(0, 0); Spans::INLINE];
        let mut len = 0;
        let mut spilled: Vec<(u32, u32)> = Vec::new();
        let mut fits = true;
        let placeholder = json::split_array(&json, |range| {
            let (Ok(start), Ok(end)) = (u32::try_from(range.start), u32::try_from(range.end))
            else {
                fits = false;
                return;
            };
            if len < Spans::INLINE {
                inline[len] = (start, end);
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push((start, end));
            }
            len += 1;
        })
        .filter(|_| fits)
        .ok_or(ParseError::InvalidPayload)?;
        let spans = if spilled.is_empty() {
            Spans::Inline {
                len: u8::try_from(len).expect("at most INLINE elements are kept inline"),
                spans: inline,
            }
        } else {
            Spans::Shared(spilled.into())
        };
        let elements = Elements {
            json,
            spans,
            skip: 0,
        };
        Ok((elements, placeholder))
    }

    /// The same elements but the first `n`.
    #[must_use]
    pub fn skip(mut self, n: usize) -> Elements {
        self.skip = (self.skip + n).min(self.spans.as_slice().len());
        self
    }

    fn spans(&self) -> &[(u32, u32)] {
        &self.spans.as_slice()[self.skip..]
    }

    /// How many elements there are.
    pub fn len(&self) -> usize {
        self.spans().len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.spans().is_empty()
    }

    /// The JSON text of element `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.spans().get(index).map(|&span| self.text(span))
    }

    /// The JSON text of the first element.
    pub fn first(&self) -> Option<&str> {
        self.get(0)
    }

    /// The JSON text of each element, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + DoubleEndedIterator + '_ {
        self.spans().iter().map(|&span| self.text(span))
    }

    fn text(&self, (start, end): (u32, u32)) -> &str {
        // The spans are byte offsets the split found at JSON token boundaries (ASCII), which
        // are char boundaries.
        &self.json[start as usize..end as usize]
    }
}

impl std::fmt::Debug for Elements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The name of an event from the first element of its array (a string, or a number as its JSON
/// text), borrowed when the string has no escapes (the split checked it already).
pub(crate) fn event_name_ref(raw: &str) -> Result<Cow<'_, str>, ParseError> {
    match raw.as_bytes().first() {
        Some(b'"') => match raw.get(1..raw.len() - 1) {
            Some(plain) if !plain.contains('\\') => Ok(Cow::Borrowed(plain)),
            _ => serde_json::from_str::<String>(raw)
                .map(Cow::Owned)
                .map_err(|_| ParseError::InvalidPayload),
        },
        Some(b'-' | b'0'..=b'9') => Ok(Cow::Borrowed(raw)),
        _ => Err(ParseError::InvalidPayload),
    }
}

impl Packet {
    /// The server's answer to a CONNECT: `0[<nsp>,]{"sid":"<id>"}`, with the private session id
    /// (`"pid"`) under connection state recovery.
    pub fn connect(ns: impl Into<Str>, sid: &str, pid: Option<&str>) -> Packet {
        // Built by hand to keep Node's key order: "sid", then "pid".
        let sid = serde_json::Value::from(sid);
        let json = match pid {
            Some(pid) => format!(r#"{{"sid":{sid},"pid":{}}}"#, serde_json::Value::from(pid)),
            None => format!(r#"{{"sid":{sid}}}"#),
        };
        Packet {
            ns: ns.into(),
            data: PacketData::Connect(Some(json.into())),
        }
    }

    /// A refused CONNECT, as Node sends it: `{"message":..}`, with `"data"` when given.
    pub fn connect_error(
        ns: impl Into<Str>,
        message: &str,
        data: Option<&serde_json::Value>,
    ) -> Packet {
        // Built by hand to keep Node's key order: "message", then "data".
        let message = serde_json::Value::from(message);
        let json = match data {
            Some(data) => format!(r#"{{"message":{message},"data":{data}}}"#),
            None => format!(r#"{{"message":{message}}}"#),
        };
        Packet {
            ns: ns.into(),
            data: PacketData::ConnectError(json.into()),
        }
    }

    /// A DISCONNECT for namespace `ns`.
    pub fn disconnect(ns: impl Into<Str>) -> Packet {
        Packet {
            ns: ns.into(),
            data: PacketData::Disconnect,
        }
    }

    /// An EVENT (a BINARY_EVENT when the payload has attachments).
    pub fn event(ns: impl Into<Str>, payload: Payload, ack: Option<u64>) -> Packet {
        Packet {
            ns: ns.into(),
            data: PacketData::Event { payload, ack },
        }
    }

    /// An ACK (a BINARY_ACK when the payload has attachments).
    pub fn ack(ns: impl Into<Str>, payload: Payload, ack: u64) -> Packet {
        Packet {
            ns: ns.into(),
            data: PacketData::Ack { payload, ack },
        }
    }

    /// The binary attachments to send after the text, in order.
    pub fn attachments(&self) -> &[Bytes] {
        match &self.data {
            PacketData::Event { payload, .. } | PacketData::Ack { payload, .. } => {
                &payload.attachments
            }
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests;
