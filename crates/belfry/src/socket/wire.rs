//! How a socket's packets become Engine.IO messages: event payloads written straight after
//! their Engine.IO header, the frames of either parser, and the queueing of frames.

use std::{cell::RefCell, fmt::Write as _};

use belfry_core::{
    Str,
    parser::{Packet, Parser, Payload, is_reserved_event, write_header},
};
use belfry_engine::{Packet as EnginePacket, SendError, SharedPackets, Socket as EngineSocket};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use belfry_core::args;

use crate::{EmitError, client::Connection};

/// The payload of `["event", ...data, ...placeholders]` for an event to `ns` (asking for
/// answer `ack`). Its JSON is written after the packet's Engine.IO text header, in the same
/// buffer, so that encoding the packet shares that buffer ([`Packet::encode_shared`]).
pub(crate) fn event_payload<T: Serialize + ?Sized>(
    ns: &str,
    ack: Option<u64>,
    event: &str,
    data: &T,
    attachments: Vec<Bytes>,
) -> Result<Payload, EmitError> {
    if is_reserved_event(event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    packet_payload(ns, false, ack, Some(event), data, attachments)
}

/// The payload of an event (`event` given) or an ack (`is_ack`, answering `id`) to `ns`: its
/// JSON array written after the packet's Engine.IO text header, in one buffer, with a
/// placeholder per attachment.
pub(crate) fn packet_payload<T: Serialize + ?Sized>(
    ns: &str,
    is_ack: bool,
    id: Option<u64>,
    event: Option<&str>,
    data: &T,
    attachments: Vec<Bytes>,
) -> Result<Payload, EmitError> {
    let (text, (start, found)) = build_text(|text| {
        write_header(text, "4", ns, is_ack, id);
        let start = text.len();
        let mut found = match event {
            Some(event) => args::push_event_array(text, event, data)?,
            None => args::push_args_array(text, data)?,
        };
        append_placeholders(text, &mut found, attachments);
        Ok::<_, EmitError>((start, found))
    })?;
    let end = text.len();
    Ok(Payload::new(text.into_slice(start..end), found))
}

thread_local! {
    /// Where a packet's text is written before it is copied into a buffer of its exact size:
    /// one buffer per thread, grown once, instead of a buffer per packet regrown as the
    /// serializer writes (a buffer that doubles as it grows reallocates once per doubling).
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The largest text buffer a thread keeps between packets.
const TEXT_KEEP: usize = 64 * 1024;

/// The shortest text given away with its buffer instead of copied out of it.
const TEXT_GIVE: usize = 1024;

/// Runs `write` on an empty text buffer (the thread's, unless a `Serialize` implementation
/// emits from inside one: then a new one) and returns what it wrote as a `Str` of its size.
fn build_text<R, E>(write: impl FnOnce(&mut String) -> Result<R, E>) -> Result<(Str, R), E> {
    TEXT.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            let result = write(&mut text);
            let out = result.map(|r| {
                let written = if text.len() < TEXT_GIVE {
                    Str::from(text.as_str())
                } else {
                    // A large text is given away rather than copied: cut to its size (glibc
                    // shrinks a block in place), the thread's buffer replaced by one as large
                    // (none past what a thread keeps).
                    let capacity = match text.capacity() {
                        capacity if capacity > TEXT_KEEP => 0,
                        capacity => capacity,
                    };
                    let mut given = std::mem::replace(&mut *text, String::with_capacity(capacity));
                    given.shrink_to_fit();
                    Str::from(given)
                };
                (written, r)
            });
            if text.capacity() > TEXT_KEEP {
                *text = String::new();
            }
            out
        }
        Err(_) => {
            let mut text = String::new();
            let r = write(&mut text)?;
            Ok((Str::from(text), r))
        }
    })
}

/// Appends a placeholder per attachment to the JSON array ending `text` (`[args]` becomes
/// `[args,{placeholder n},...]`, numbered after the bytes already `found`), and the attachments
/// to `found`.
pub(crate) fn append_placeholders(text: &mut String, found: &mut Vec<Bytes>, more: Vec<Bytes>) {
    if more.is_empty() {
        return;
    }
    text.pop();
    for num in found.len()..found.len() + more.len() {
        if !text.ends_with('[') {
            text.push(',');
        }
        let _ = write!(text, r#"{{"_placeholder":true,"num":{num}}}"#);
    }
    text.push(']');
    found.extend(more);
}

/// The Engine.IO messages of a packet as `parser` writes it: its text, then each attachment
/// (the default parser), or one binary message (msgpack).
pub(crate) fn frames(packet: &Packet, parser: Parser) -> Frames {
    if parser == Parser::Msgpack {
        return msgpack_frame(packet);
    }
    // Encoded once with the Engine.IO message type, so that every recipient's transport sends
    // the same buffer as it is.
    text_frames(
        packet.encode_shared("4"),
        packet.attachments().iter().cloned(),
    )
}

/// [`frames`] of a packet given away: its text keeps the payload's reference to its buffer.
pub(crate) fn into_frames(packet: Packet, parser: Parser) -> Frames {
    if parser == Parser::Msgpack {
        return msgpack_frame(&packet);
    }
    let (text, attachments) = packet.into_shared("4");
    text_frames(text, attachments)
}

fn msgpack_frame(packet: &Packet) -> Frames {
    msgpack_frames(packet).unwrap_or_else(|error| {
        // A placeholder without its attachment (the raw text of an `Args` holding binary).
        tracing::error!(%error, "packet not encodable, dropped");
        Frames::Many(Vec::new())
    })
}

/// The one binary message of a packet (msgpack); an error for a payload msgpack cannot carry.
pub(super) fn msgpack_frames(packet: &Packet) -> Result<Frames, belfry_core::msgpack::WireError> {
    belfry_core::parser::msgpack::encode(packet)
        .map(|message| Frames::One([EnginePacket::Binary(message)]))
}

fn text_frames<A>(text: Str, attachments: A) -> Frames
where
    A: IntoIterator<Item = Bytes>,
    A::IntoIter: ExactSizeIterator,
{
    let attachments = attachments.into_iter();
    let text = EnginePacket::Encoded(text);
    if attachments.len() == 0 {
        return Frames::One([text]);
    }
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(text);
    frames.extend(attachments.map(EnginePacket::Binary));
    Frames::Many(frames)
}

/// The Engine.IO messages of one packet: most packets are one (no allocation for the list).
pub(crate) enum Frames {
    One([EnginePacket; 1]),
    Many(Vec<EnginePacket>),
}

impl Frames {
    /// The frames shared by every recipient of a broadcast: each queue holds a reference.
    pub(crate) fn into_shared(self) -> SharedPackets {
        match self {
            Frames::One([one]) => SharedPackets::one(one),
            Frames::Many(many) => {
                SharedPackets::new(many).expect("a packet has at least its text's frame")
            }
        }
    }
}

impl std::ops::Deref for Frames {
    type Target = [EnginePacket];

    fn deref(&self) -> &[EnginePacket] {
        match self {
            Frames::One(one) => one,
            Frames::Many(many) => many,
        }
    }
}

/// Queues the frames of a packet for one connection, giving them away (see
/// [`EngineSocket::send_all_with`]), saying whether they may be compressed.
pub(crate) fn send_frames(
    conn: &EngineSocket<Connection>,
    frames: Frames,
    compress: bool,
) -> Result<(), EmitError> {
    match frames {
        Frames::One(one) => conn.send_all_with(one, compress),
        Frames::Many(many) => conn.send_all_with(many, compress),
    }
    .map_err(emit_error)
}

/// Queues frames shared with other connections (a broadcast's), saying whether they may be
/// compressed (Node's `compress` flag).
pub(crate) fn send_frames_with(
    conn: &EngineSocket<Connection>,
    frames: &SharedPackets,
    compress: bool,
) -> Result<(), EmitError> {
    conn.send_shared_with(frames, compress).map_err(emit_error)
}

/// How many of `frames` carry data, and how many bytes of it, as Node's Admin UI counts what
/// goes out: the data of each Engine.IO packet (without the packet type).
pub(crate) fn data_of<'a>(frames: impl IntoIterator<Item = &'a EnginePacket>) -> (usize, usize) {
    frames
        .into_iter()
        .map(|frame| match frame {
            // Its text starts with the Engine.IO message type.
            EnginePacket::Encoded(text) => text.len().saturating_sub(1),
            EnginePacket::Message(text) => text.len(),
            EnginePacket::Binary(data) => data.len(),
            _ => 0,
        })
        .filter(|&len| len > 0)
        .fold((0, 0), |(packets, bytes), len| (packets + 1, bytes + len))
}

fn emit_error(error: SendError) -> EmitError {
    match error {
        SendError::Full => EmitError::Full,
        _ => EmitError::Disconnected,
    }
}

/// Deserializes acknowledgement arguments: one as `R`, several as a tuple, none as `null`.
pub(crate) fn deserialize_args<R: DeserializeOwned>(
    payload: &Payload,
) -> Result<R, serde_json::Error> {
    let args = payload
        .elements()
        .map_err(<serde_json::Error as serde::de::Error>::custom)?;
    let json = match args.len() {
        0 => "null",
        1 => args.first().expect("one argument"),
        _ => &payload.json,
    };
    args::from_str(json, &payload.attachments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_end_with_placeholders() {
        let payload = event_payload(
            "/",
            None,
            "up",
            &(1, "a"),
            vec![Bytes::from_static(b"x"); 2],
        )
        .unwrap();
        assert_eq!(
            &*payload.json,
            r#"["up",1,"a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        let payload = event_payload("/", None, "up", &(), vec![Bytes::from_static(b"x")]).unwrap();
        assert_eq!(&*payload.json, r#"["up",{"_placeholder":true,"num":0}]"#);
        assert!(matches!(
            event_payload("/", None, "disconnect", &(), Vec::new()),
            Err(EmitError::ReservedEvent(_))
        ));
    }

    /// Texts on either side of the length given away with their buffer come out the same, and
    /// the thread's buffer goes on serving after a large one.
    #[test]
    fn large_and_small_texts_alternate() {
        for len in [10, TEXT_GIVE - 20, TEXT_GIVE, 5000, 10, 70_000, 3] {
            let arg = "x".repeat(len);
            let payload = event_payload("/", Some(4), "big", &arg, Vec::new()).unwrap();
            assert_eq!(&*payload.json, format!(r#"["big","{arg}"]"#));
            let text = Packet::event("/", payload, Some(4)).encode_shared("4");
            assert_eq!(&*text, format!(r#"424["big","{arg}"]"#));
        }
    }
}
