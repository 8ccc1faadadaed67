//! tungstenite as an oracle for the frame codec: the same bytes read by both must give the same
//! messages and end the same way. Used by the differential tests and the `ws_frames` fuzz target.
//!
//! What is compared: the messages (kind and bytes), and the end: waiting for more input, or the
//! code of the close frame the server answers with (the client's code echoed, or the
//! violation's: 1002, 1007, 1009). Two differences are by design:
//! - The codec checks a frame's header as soon as it has arrived; tungstenite checks most rules
//!   once the whole payload is in. When the codec has closed on a header and tungstenite still
//!   waits for that frame's payload, they agree.
//! - Close code 1014 (Bad Gateway, in the IANA registry) is valid for the codec, as for Node's
//!   `ws`; tungstenite answers it with 1002.
//! - tungstenite checks a frame's announced length against its own frame limit (set here far
//!   above the codec's message limit, which it checks on the whole payload) before anything
//!   else: a frame announcing more breaks the connection with 1009 where the codec may find a
//!   protocol violation (1002) in the same header first.
//! - A close frame with both an invalid code and a reason that is not UTF-8 is answered with
//!   1002 by the codec (the code is checked first, as Node's `ws` does), with 1007 by
//!   tungstenite.

use std::io::{self, Cursor, Read, Write};

use tokio_tungstenite::tungstenite::{
    Message,
    error::Error,
    protocol::{Role, WebSocket, WebSocketConfig},
};

use super::{FrameReader, Incoming, Outbox, ReadEnd, opcode, parse_header};

/// What a reader made of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The messages: opcode (1 text, 2 binary) and bytes.
    pub(crate) messages: Vec<(u8, Vec<u8>)>,
    pub(crate) end: End,
}

/// How reading a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Every whole frame was taken; the reader waits for more.
    NeedsMore,
    /// The server closes: its close frame carries this code (`None`: an empty close frame).
    Close(Option<u16>),
}

/// The largest frame tungstenite buffers before the codec's limit decides: it reserves a
/// frame's announced length, so a hostile header must not reach that reservation.
const ORACLE_FRAME_CAP: usize = 1 << 20;

/// The codec's reading of `input` (whole), with messages up to `max` bytes.
pub(crate) fn belfry(input: &[u8], max: usize, inflate: bool) -> Outcome {
    let mut reader = FrameReader::new(max, inflate);
    let mut outbox = Outbox::new(None);
    let mut messages = Vec::new();
    let mut buf = input.to_vec();
    let result = reader.frames(&mut outbox, &mut buf, &mut |message| {
        messages.push(match message {
            Incoming::Text(text) => (opcode::TEXT, text.as_bytes().to_vec()),
            Incoming::Binary(data) => (opcode::BINARY, data.to_vec()),
        });
        true
    });
    let end = match result {
        Ok(_) => End::NeedsMore,
        Err(ReadEnd::Violation(code)) => End::Close(Some(code)),
        Err(ReadEnd::Closed) => End::Close(answered_code(&outbox.out)),
        Err(ReadEnd::Gone) => unreachable!("the codec does no I/O"),
    };
    Outcome { messages, end }
}

/// The code of the close frame in `out` (the server's frames, unmasked).
fn answered_code(mut out: &[u8]) -> Option<u16> {
    while let Some(head) = parse_header(out) {
        let end = head.size + head.len as usize;
        if head.opcode == opcode::CLOSE {
            return out.get(head.size..end).and_then(|payload| {
                Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]))
            });
        }
        out = &out[end..];
    }
    panic!("a close frame is answered")
}

/// The input stream, read to its end; what is written is dropped.
struct Stream(Cursor<Vec<u8>>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's reading of `input`, as a server, with messages up to `max` bytes.
pub(crate) fn tungstenite(input: &[u8], max: usize) -> Outcome {
    assert!(max <= ORACLE_FRAME_CAP, "the codec's limit decides");
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(ORACLE_FRAME_CAP));
    let mut ws = WebSocket::from_raw_socket(
        Stream(Cursor::new(input.to_vec())),
        Role::Server,
        Some(config),
    );
    let mut messages = Vec::new();
    let end = loop {
        match ws.read() {
            Ok(Message::Text(text)) => messages.push((opcode::TEXT, text.as_bytes().to_vec())),
            Ok(Message::Binary(data)) => messages.push((opcode::BINARY, data.to_vec())),
            Ok(Message::Close(frame)) => break End::Close(frame.map(|frame| frame.code.into())),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(Error::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => break End::NeedsMore,
            Err(Error::Protocol(_)) => break End::Close(Some(1002)),
            Err(Error::Utf8(_)) => break End::Close(Some(1007)),
            Err(Error::Capacity(_)) => break End::Close(Some(1009)),
            Err(other) => panic!("tungstenite ended otherwise: {other}"),
        }
    };
    Outcome { messages, end }
}

/// Reads `input` with both (the codec without compression), and says how they differ, if
/// they do beyond the differences by design.
pub(crate) fn compare(input: &[u8], max: usize) -> Result<(), String> {
    let ours = belfry(input, max, false);
    let theirs = tungstenite(input, max);
    agree(input, &ours, &theirs)
}

/// Whether the codec's `ours` and the oracle's `theirs` agree (see the module's doc).
pub(crate) fn agree(input: &[u8], ours: &Outcome, theirs: &Outcome) -> Result<(), String> {
    let same_end = match (ours.end, theirs.end) {
        (a, b) if a == b => true,
        // Decided on a header whose payload has not arrived.
        (End::Close(_), End::NeedsMore) => true,
        (End::Close(Some(1014)), End::Close(Some(1002))) => true,
        (End::Close(Some(1002)), End::Close(Some(1007))) => first_close_is_doubly_bad(input),
        (End::Close(Some(1002)), End::Close(Some(1009))) => announces_over_the_cap(input),
        _ => false,
    };
    if ours.messages == theirs.messages && same_end {
        Ok(())
    } else {
        Err(format!("belfry: {ours:?}\ntungstenite: {theirs:?}"))
    }
}

/// Whether the first frame in `input` that is not whole announces more than tungstenite's
/// frame limit.
fn announces_over_the_cap(mut input: &[u8]) -> bool {
    while let Some(head) = parse_header(input) {
        let len = usize::try_from(head.len).unwrap_or(usize::MAX);
        match head.size.checked_add(len).filter(|&end| end <= input.len()) {
            Some(end) => input = &input[end..],
            None => return len > ORACLE_FRAME_CAP,
        }
    }
    false
}

/// Whether the first close frame in `input` has both an invalid code and a reason that is not
/// UTF-8.
fn first_close_is_doubly_bad(mut input: &[u8]) -> bool {
    while let Some(head) = parse_header(input) {
        let Some(end) = usize::try_from(head.len)
            .ok()
            .and_then(|len| len.checked_add(head.size))
            .filter(|&end| end <= input.len())
        else {
            return false;
        };
        if head.opcode == opcode::CLOSE {
            let mut payload = input[head.size..end].to_vec();
            if let Some(mask) = head.mask {
                super::unmask(&mut payload, mask);
            }
            return match payload.as_slice() {
                [a, b, reason @ ..] => {
                    !super::is_sendable_code(u16::from_be_bytes([*a, *b]))
                        && std::str::from_utf8(reason).is_err()
                }
                _ => false,
            };
        }
        input = &input[end..];
    }
    false
}

/// The codec's reading of `input` arriving in pieces cut at `splits` (offsets, in any order),
/// each piece added to what was held back, as the connection feeds it.
pub(crate) fn belfry_in_pieces(
    input: &[u8],
    splits: &[usize],
    max: usize,
    inflate: bool,
) -> Outcome {
    let mut cuts: Vec<usize> = splits.iter().map(|&at| at.min(input.len())).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut reader = FrameReader::new(max, inflate);
    let mut outbox = Outbox::new(None);
    let mut messages = Vec::new();
    let mut held = Vec::new();
    let mut start = 0;
    for cut in cuts {
        held.extend_from_slice(&input[start..cut]);
        start = cut;
        let result = reader.frames(&mut outbox, &mut held, &mut |message| {
            messages.push(match message {
                Incoming::Text(text) => (opcode::TEXT, text.as_bytes().to_vec()),
                Incoming::Binary(data) => (opcode::BINARY, data.to_vec()),
            });
            true
        });
        match result {
            Ok((used, _)) => drop(held.drain(..used)),
            Err(ReadEnd::Violation(code)) => {
                return Outcome {
                    messages,
                    end: End::Close(Some(code)),
                };
            }
            Err(ReadEnd::Closed) => {
                return Outcome {
                    messages,
                    end: End::Close(answered_code(&outbox.out)),
                };
            }
            Err(ReadEnd::Gone) => unreachable!("the codec does no I/O"),
        }
    }
    Outcome {
        messages,
        end: End::NeedsMore,
    }
}
