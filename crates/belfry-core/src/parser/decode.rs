//! Text and binary messages to packets, with Node's validation rules.

use bytes::Bytes;
use serde_json::Value;

use super::{
    DEFAULT_MAX_ATTACHMENTS, Elements, Packet, PacketData, Payload, event_name_ref,
    is_reserved_event,
};
use crate::Str;

/// Why a message is not a valid Socket.IO packet. Each one is a protocol violation: the
/// connection that sent it is closed ("parse error").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The message is empty.
    #[error("empty packet")]
    Empty,
    /// The type digit is not 0–6.
    #[error("unknown packet type")]
    UnknownType,
    /// A binary packet's attachment count is missing, not a number, or not followed by `-`.
    #[error("invalid attachment count")]
    InvalidAttachments,
    /// A binary packet declares more attachments than allowed (10 by default).
    #[error("too many attachments")]
    TooManyAttachments,
    /// The ack id does not fit in 64 bits, or an ACK has none.
    #[error("invalid ack id")]
    InvalidAckId,
    /// The JSON is invalid, or of the wrong shape for the packet type.
    #[error("invalid payload")]
    InvalidPayload,
    /// An event uses a reserved name (`connect`, `disconnect`, ...).
    #[error("reserved event name")]
    ReservedEvent,
    /// A `_placeholder` object is malformed or points past the attachments.
    #[error("invalid attachment placeholder")]
    InvalidPlaceholder,
    /// A binary message arrived with no binary packet waiting for attachments.
    #[error("unexpected binary message")]
    UnexpectedBinary,
    /// A text message arrived while a binary packet still waited for attachments.
    #[error("unexpected text message while attachments are awaited")]
    UnexpectedText,
    /// A text message reached the msgpack parser, whose packets are binary messages.
    #[error("text message with the msgpack parser")]
    TextWithMsgpack,
}

/// Turns the messages of one connection into packets, reassembling binary packets from their
/// text header and their attachments.
///
/// Stateful: use one decoder per connection. Memory is bounded: a packet declares at most
/// `max_attachments` attachments, and nothing is allocated from the declared count.
#[derive(Debug)]
pub struct Decoder {
    max_attachments: usize,
    /// Boxed: a packet rarely waits, and the decoder lives as long as its connection.
    pending: Option<Box<Pending>>,
}

#[derive(Debug)]
struct Pending {
    packet: Packet,
    expected: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_ATTACHMENTS)
    }
}

impl Decoder {
    /// A decoder accepting at most `max_attachments` attachments per packet.
    pub fn new(max_attachments: usize) -> Decoder {
        Decoder {
            max_attachments,
            pending: None,
        }
    }

    /// True while a binary packet waits for attachments.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Decodes a text message. Returns the packet, or `None` when it is a binary packet that
    /// waits for its attachments.
    ///
    /// # Errors
    ///
    /// Any [`ParseError`]; the decoder is then reset.
    pub fn decode_text(&mut self, text: Str) -> Result<Option<Packet>, ParseError> {
        if self.pending.take().is_some() {
            return Err(ParseError::UnexpectedText);
        }
        let (packet, expected) = parse(text, self.max_attachments)?;
        if expected == 0 {
            Ok(Some(packet))
        } else {
            self.pending = Some(Box::new(Pending { packet, expected }));
            Ok(None)
        }
    }

    /// Decodes a binary message: the next attachment of the waiting packet. Returns the packet
    /// once its last attachment arrived.
    ///
    /// # Errors
    ///
    /// [`ParseError::UnexpectedBinary`] when no packet waits for attachments.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, ParseError> {
        let Some(pending) = &mut self.pending else {
            return Err(ParseError::UnexpectedBinary);
        };
        let (PacketData::Event { payload, .. } | PacketData::Ack { payload, .. }) =
            &mut pending.packet.data
        else {
            // Only events and acks are ever left waiting; anything else is a stray binary.
            self.pending = None;
            return Err(ParseError::UnexpectedBinary);
        };
        payload.attachments.push(data);
        if payload.attachments.len() < pending.expected {
            return Ok(None);
        }
        Ok(self.pending.take().map(|pending| pending.packet))
    }
}

/// Parses the text of a packet; returns it with the number of attachments still to come.
fn parse(text: Str, max_attachments: usize) -> Result<(Packet, usize), ParseError> {
    let bytes = text.as_bytes();
    let kind = *bytes.first().ok_or(ParseError::Empty)?;
    if !(b'0'..=b'6').contains(&kind) {
        return Err(ParseError::UnknownType);
    }
    let mut i = 1;
    let mut attachments = 0;
    if kind == b'5' || kind == b'6' {
        let digits = digit_run(bytes, i);
        if digits == 0 || bytes.get(i + digits) != Some(&b'-') {
            return Err(ParseError::InvalidAttachments);
        }
        // Parsed with overflow checks: a 10,000-digit count fails in one linear pass.
        attachments = text[i..i + digits]
            .parse::<usize>()
            .map_err(|_| ParseError::TooManyAttachments)?;
        if attachments > max_attachments {
            return Err(ParseError::TooManyAttachments);
        }
        i += digits + 1;
    }
    let ns = if bytes.get(i) == Some(&b'/') {
        let end = bytes[i..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |p| i + p);
        let ns = text.slice(i..end);
        i = (end + 1).min(bytes.len());
        ns
    } else {
        Str::from_static("/")
    };
    let digits = digit_run(bytes, i);
    let ack = if digits > 0 {
        let id = text[i..i + digits]
            .parse::<u64>()
            .map_err(|_| ParseError::InvalidAckId)?;
        i += digits;
        Some(id)
    } else {
        None
    };
    let end = text.len();
    let json = text.into_slice(i..end);
    let data = match kind {
        b'0' if json.is_empty() => PacketData::Connect(None),
        b'0' => {
            expect_shape(&json, |first| first == b'{')?;
            PacketData::Connect(Some(json))
        }
        b'1' if json.is_empty() => PacketData::Disconnect,
        b'2' | b'5' => {
            let (elements, placeholder) = Elements::split(json.clone())?;
            check_event(&elements)?;
            check_placeholders(&json, placeholder, attachments)?;
            PacketData::Event {
                payload: Payload::decoded(json, elements),
                ack,
            }
        }
        b'3' | b'6' => {
            let ack = ack.ok_or(ParseError::InvalidAckId)?;
            let (elements, placeholder) = Elements::split(json.clone())?;
            check_placeholders(&json, placeholder, attachments)?;
            PacketData::Ack {
                payload: Payload::decoded(json, elements),
                ack,
            }
        }
        b'4' => {
            expect_shape(&json, |first| first == b'{' || first == b'"')?;
            PacketData::ConnectError(json)
        }
        _ => return Err(ParseError::InvalidPayload),
    };
    Ok((Packet { ns, data }, attachments))
}

/// The length of the run of ASCII digits at `bytes[from..]`.
fn digit_run(bytes: &[u8], from: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// Checks that `json` is one valid JSON value, nesting no deeper than serde_json would parse,
/// whose first character passes `first`.
fn expect_shape(json: &str, first: impl Fn(u8) -> bool) -> Result<(), ParseError> {
    let shaped = json
        .trim_start_matches([' ', '\n', '\r', '\t'])
        .as_bytes()
        .first()
        .is_some_and(|&b| first(b));
    if shaped && super::json::is_value(json) {
        Ok(())
    } else {
        Err(ParseError::InvalidPayload)
    }
}

/// An event is a non-empty array whose first element is a string (not reserved) or a number.
pub(super) fn check_event(elements: &Elements) -> Result<(), ParseError> {
    let first = elements.first().ok_or(ParseError::InvalidPayload)?;
    let name = event_name_ref(first)?;
    if is_reserved_event(&name) {
        return Err(ParseError::ReservedEvent);
    }
    Ok(())
}

/// Every `_placeholder` object must be `{"_placeholder":true,"num":i}` with `i` an integer below
/// the attachment count. A packet without the key anywhere (as the split found) is not parsed
/// again.
fn check_placeholders(json: &str, placeholder: bool, attachments: usize) -> Result<(), ParseError> {
    if attachments == 0 && !placeholder {
        return Ok(());
    }
    let value: Value = serde_json::from_str(json).map_err(|_| ParseError::InvalidPayload)?;
    walk_placeholders(&value, attachments)
}

fn walk_placeholders(value: &Value, attachments: usize) -> Result<(), ParseError> {
    match value {
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| walk_placeholders(item, attachments)),
        Value::Object(map) => match map.get("_placeholder") {
            Some(Value::Bool(true))
                if map
                    .get("num")
                    .and_then(Value::as_u64)
                    .is_some_and(|num| num < attachments as u64) =>
            {
                Ok(())
            }
            Some(_) => Err(ParseError::InvalidPlaceholder),
            None => map
                .values()
                .try_for_each(|item| walk_placeholders(item, attachments)),
        },
        _ => Ok(()),
    }
}
