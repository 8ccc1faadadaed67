//! Packet to text.

use std::fmt;

use super::{Packet, PacketData};
use crate::Str;

impl Packet {
    /// The packet's text: `<type>[<n>-][<nsp>,][<ack id>][<json>]`. Binary attachments, if
    /// any, are sent after it, one Engine.IO binary message each ([`Packet::attachments`]).
    pub fn encode(&self) -> String {
        self.encode_after("")
    }

    /// [`Packet::encode`] after `prefix`, in one allocation (Belfry writes the Engine.IO type
    /// `4` first, so that the engine sends the text without copying it again).
    pub fn encode_after(&self, prefix: &str) -> String {
        let (head, json) = self.head();
        let json = json.map_or("", |json| &**json);
        let mut out = String::with_capacity(prefix.len() + json.len() + self.ns.len() + 24);
        let _ = head.write(&mut out, prefix);
        out.push_str(json);
        out
    }

    /// [`Packet::encode_after`] as a [`Str`]. When the payload's JSON already follows this
    /// very header in its buffer (as [`write_header`] puts it), the text is that buffer, shared:
    /// nothing is copied.
    pub fn encode_shared(&self, prefix: &str) -> Str {
        let (head, json) = self.head();
        let mut expected = SmallText::default();
        if let Some(json) = json
            && head.write(&mut expected, prefix).is_ok()
            && let Some(text) = json.widen_front(expected.as_str())
        {
            return text;
        }
        Str::from(self.encode_after(prefix))
    }

    /// [`Packet::encode_shared`] of a packet given away, with its attachments: the text keeps
    /// the payload's reference to its buffer instead of taking one more (which, for a buffer
    /// made from a `String`, allocates the first time).
    pub fn into_shared(self, prefix: &str) -> (Str, Vec<bytes::Bytes>) {
        let (head, json) = self.head();
        let mut expected = SmallText::default();
        let follows = json.is_some_and(|json| {
            head.write(&mut expected, prefix).is_ok() && json.follows(expected.as_str())
        });
        match self.data {
            PacketData::Event { payload, .. } | PacketData::Ack { payload, .. } if follows => {
                let text = payload
                    .json
                    .into_widened_front(expected.as_str())
                    .expect("the buffer holds the header before the JSON (checked above)");
                (text, payload.attachments)
            }
            _ => {
                let text = self.encode_shared(prefix);
                (text, self.attachments().to_vec())
            }
        }
    }

    fn head(&self) -> (Head<'_>, Option<&Str>) {
        let (kind, attachments, ack, json) = match &self.data {
            PacketData::Connect(json) => ('0', 0, None, json.as_ref()),
            PacketData::Disconnect => ('1', 0, None, None),
            PacketData::Event { payload, ack } if payload.attachments.is_empty() => {
                ('2', 0, *ack, Some(&payload.json))
            }
            PacketData::Event { payload, ack } => {
                ('5', payload.attachments.len(), *ack, Some(&payload.json))
            }
            PacketData::Ack { payload, ack } if payload.attachments.is_empty() => {
                ('3', 0, Some(*ack), Some(&payload.json))
            }
            PacketData::Ack { payload, ack } => (
                '6',
                payload.attachments.len(),
                Some(*ack),
                Some(&payload.json),
            ),
            PacketData::ConnectError(json) => ('4', 0, None, Some(json)),
        };
        let head = Head {
            kind,
            attachments,
            ns: &self.ns,
            ack,
        };
        (head, json)
    }
}

/// Writes `prefix` and the header of an event (`ack` its id, if it asks for an answer) or, with
/// `answer`, of the ack `ack`, without attachments: what [`Packet::encode_after`] writes before
/// the JSON. JSON written right after it makes a payload whose [`Packet::encode_shared`] costs
/// no copy.
///
/// ```
/// use belfry_core::{Str, parser::{Packet, Payload, write_header}};
///
/// let mut text = String::new();
/// write_header(&mut text, "4", "/chat", false, Some(7));
/// let start = text.len();
/// text.push_str(r#"["hi"]"#);
/// let text = Str::from(text);
/// let packet = Packet::event("/chat", Payload::json(text.slice(start..text.len())), Some(7));
/// assert_eq!(packet.encode_shared("4"), r#"42/chat,7["hi"]"#);
/// ```
pub fn write_header(out: &mut String, prefix: &str, ns: &str, answer: bool, ack: Option<u64>) {
    let head = Head {
        kind: if answer { '3' } else { '2' },
        attachments: 0,
        ns,
        ack,
    };
    let _ = head.write(out, prefix);
}

/// What precedes a packet's JSON.
struct Head<'a> {
    kind: char,
    attachments: usize,
    ns: &'a str,
    ack: Option<u64>,
}

impl Head<'_> {
    fn write(&self, out: &mut impl fmt::Write, prefix: &str) -> fmt::Result {
        out.write_str(prefix)?;
        out.write_char(self.kind)?;
        if self.attachments > 0 {
            write!(out, "{}-", self.attachments)?;
        }
        if self.ns != "/" {
            out.write_str(self.ns)?;
            out.write_char(',')?;
        }
        if let Some(ack) = self.ack {
            write!(out, "{ack}")?;
        }
        Ok(())
    }
}

/// A short text on the stack (a header to compare); writing past its capacity fails.
struct SmallText {
    bytes: [u8; 64],
    len: usize,
}

impl Default for SmallText {
    fn default() -> Self {
        SmallText {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl SmallText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for SmallText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
