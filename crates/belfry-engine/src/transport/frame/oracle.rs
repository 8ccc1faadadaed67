//! tungstenite as an oracle for the frame codec: the same bytes read by both must give the same
//! messages and end the same way. Used by the differential tests and the `ws_frames` fuzz target.
//!
//! What is compared: the messages (kind and bytes), and the end: waiting for more input, or the
//! code of the close frame the server answers with (the client's code echoed, or the
//! violation's: 1002, 1007, 1009). Four differences are by design, each accepted only where
//! both readers read everything before one frame the same way and that frame shows it:
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
    agree(input, max, &ours, &theirs)
}

/// Whether the codec's `ours` and the oracle's `theirs` (of `input`, with messages up to `max`
/// bytes) agree (see the module's doc).
pub(crate) fn agree(
    input: &[u8],
    max: usize,
    ours: &Outcome,
    theirs: &Outcome,
) -> Result<(), String> {
    let by_design = ours == theirs
        || match (ours.end, theirs.end) {
            // Decided on a header whose payload has not arrived.
            (End::Close(_), End::NeedsMore) => stops_at(input, max, ours, |frame| !frame.whole),
            (End::Close(Some(1014)), End::Close(Some(1002))) => {
                stops_at(input, max, ours, |frame| {
                    frame.clean_close(|code, _| code == 1014)
                })
            }
            (End::Close(Some(1002)), End::Close(Some(1007))) => {
                stops_at(input, max, ours, |frame| {
                    frame.clean_close(|code, reason| {
                        !super::is_sendable_code(code) && std::str::from_utf8(reason).is_err()
                    })
                })
            }
            (End::Close(Some(1002)), End::Close(Some(1009))) => {
                stops_at(input, max, ours, |frame| {
                    !frame.whole
                        && frame
                            .head
                            .as_ref()
                            .is_some_and(|h| h.len > ORACLE_FRAME_CAP as u64)
                })
            }
            _ => false,
        };
    if by_design && ours.messages == theirs.messages {
        Ok(())
    } else {
        Err(format!("belfry: {ours:?}\ntungstenite: {theirs:?}"))
    }
}

/// A frame of the input: its header (`None`: not all there), its bytes (the rest of the input
/// when not whole), unmasked.
struct Frame {
    head: Option<super::Header>,
    payload: Vec<u8>,
    whole: bool,
}

impl Frame {
    /// A close frame that breaks no rule but what `code_and_reason` says.
    fn clean_close(&self, code_and_reason: impl Fn(u16, &[u8]) -> bool) -> bool {
        let Some(head) = &self.head else {
            return false;
        };
        let clean = self.whole
            && head.opcode == opcode::CLOSE
            && head.fin
            && !head.rsv1
            && !head.rsv23
            && head.mask.is_some()
            && head.len <= 125;
        clean
            && match self.payload.as_slice() {
                [a, b, reason @ ..] => code_and_reason(u16::from_be_bytes([*a, *b]), reason),
                _ => false,
            }
    }
}

/// Whether both readers read everything before the first frame that `is_it` picks the same way
/// and wait there (so that frame decided), with `ours`'s messages.
fn stops_at(input: &[u8], max: usize, ours: &Outcome, is_it: impl Fn(&Frame) -> bool) -> bool {
    let mut start = 0;
    loop {
        let rest = &input[start..];
        let head = parse_header(rest);
        let end = head.as_ref().and_then(|head| {
            usize::try_from(head.len)
                .ok()
                .and_then(|len| len.checked_add(head.size))
                .filter(|&end| end <= rest.len())
        });
        let mut payload = match (&head, end) {
            (Some(head), Some(end)) => rest[head.size..end].to_vec(),
            _ => Vec::new(),
        };
        if let (Some(mask), Some(_)) = (head.as_ref().and_then(|h| h.mask), end) {
            super::unmask(&mut payload, mask);
        }
        let frame = Frame {
            head,
            payload,
            whole: end.is_some(),
        };
        if is_it(&frame) {
            let before = &input[..start];
            let (a, b) = (belfry(before, max, false), tungstenite(before, max));
            return a.end == End::NeedsMore && a == b && a.messages == ours.messages;
        }
        match end {
            Some(end) => start += end,
            None => return false,
        }
    }
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
