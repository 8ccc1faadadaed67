//! WebSocket permessage-deflate (RFC 7692), as Node's `perMessageDeflate`: the negotiation, the
//! inflating of the client's compressed messages (the frame codec collects them, see
//! [`super::frame`]), and the compression of the server's frames of at least the threshold.
//!
//! Both sides compress each message on its own (`server_no_context_takeover;
//! client_no_context_takeover`, which RFC 7692 lets a server ask for): a connection keeps no
//! compression window between messages, and one compressor and one decompressor per thread
//! serve every connection.

use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, header};

use super::frame::{parse_header, put_header};

/// The `Sec-WebSocket-Extensions` answer when the client offered permessage-deflate.
const RESPONSE: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What this server agrees to when a client offers permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The client's `server_max_window_bits`, if it gave one: the server's back-references
    /// reach at most `2^bits` bytes back.
    pub(crate) server_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` answer.
    pub(crate) fn response(self) -> String {
        match self.server_max_window_bits {
            Some(bits) => format!("{RESPONSE}; server_max_window_bits={bits}"),
            None => RESPONSE.to_owned(),
        }
    }

    /// The longest message the server may compress. Each message is compressed on its own, so
    /// a back-reference reaches at most the message's length back: a message no longer than
    /// the client's window is compressed as it is, a longer one goes out uncompressed (RFC 7692
    /// lets each message choose). The compressor's own window is 2^15.
    pub(crate) fn max_compressed(self) -> usize {
        match self.server_max_window_bits {
            Some(bits) if bits < 15 => 1 << bits,
            _ => usize::MAX,
        }
    }
}

/// The end of every compressed message, left out on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The first permessage-deflate offer of the client with parameters this server can honour
/// (any `client_max_window_bits`; any `server_max_window_bits` from 8 to 15, as Node's `ws`),
/// and what the server agrees to; `None` if there is none.
pub(crate) fn offered(headers: &HeaderMap) -> Option<Agreed> {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offer| {
            let mut params = offer.split(';').map(str::trim);
            if params.next() != Some("permessage-deflate") {
                return None;
            }
            let window_bits =
                |value: &str| value.parse::<u8>().ok().filter(|b| (8..=15).contains(b));
            let mut agreed = Agreed {
                server_max_window_bits: None,
            };
            for param in params {
                let (name, value) = param.split_once('=').unwrap_or((param, ""));
                let value = value.trim().trim_matches('"');
                match name.trim() {
                    "server_no_context_takeover" | "client_no_context_takeover"
                        if value.is_empty() => {}
                    "client_max_window_bits"
                        if value.is_empty() || window_bits(value).is_some() => {}
                    "server_max_window_bits" => {
                        agreed.server_max_window_bits = Some(window_bits(value)?);
                    }
                    _ => return None,
                }
            }
            Some(agreed)
        })
}

thread_local! {
    /// Reset before each message: no context is taken over.
    static CODEC: RefCell<(Compress, Decompress)> = RefCell::new((
        Compress::new(Compression::default(), false),
        Decompress::new(false),
    ));
}

thread_local! {
    /// Where a batch of frames is encoded before it is written: one buffer per worker thread,
    /// not one per connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The largest scratch buffer a thread keeps between batches.
const SCRATCH_KEEP: usize = 128 * 1024;

/// Runs `f` on the thread's scratch buffer, empty.
pub(super) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        let result = f(&mut buf);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        result
    })
}

/// Compresses the server's data frames of at least a threshold (and at most the longest
/// message the agreed window allows).
pub(crate) struct Compressor {
    threshold: usize,
    max: usize,
}

impl Compressor {
    pub(super) fn new(threshold: usize, max: usize) -> Self {
        Compressor { threshold, max }
    }

    /// Appends the whole frames in `frames` to `out`, each data frame of at least the
    /// threshold compressed.
    pub(super) fn compress_frames(&self, mut frames: &[u8], out: &mut BytesMut) {
        while let Some(head) = parse_header(frames) {
            let len = usize::try_from(head.len).unwrap_or(usize::MAX);
            let Some(payload) = frames.get(head.size..head.size.saturating_add(len)) else {
                break;
            };
            if head.fin
                && !head.rsv1
                && matches!(head.opcode, 1 | 2)
                && (self.threshold..=self.max).contains(&len)
            {
                let compressed = CODEC.with(|codec| deflate(&mut codec.borrow_mut().0, payload));
                put_header(out, true, head.opcode, compressed.len());
                out.extend_from_slice(&compressed);
            } else {
                out.extend_from_slice(&frames[..head.size + len]);
            }
            frames = &frames[head.size + len..];
        }
        debug_assert!(frames.is_empty(), "whole frames only");
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InflateError {
    /// Inflated, it is larger than the limit.
    TooLarge,
    /// Not deflate data.
    Invalid,
}

/// A compressed message (without its [`TAIL`]) inflated, at most `max` bytes of it.
pub(super) fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    CODEC.with(|codec| {
        let decompress = &mut codec.borrow_mut().1;
        decompress.reset(false);
        let mut out = Vec::new();
        for mut input in [data, &TAIL[..]] {
            loop {
                if out.len() == out.capacity() {
                    out.reserve(8192);
                }
                let before = decompress.total_in();
                let status = decompress
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Invalid)?;
                let taken = usize::try_from(decompress.total_in() - before).unwrap_or(usize::MAX);
                input = input.get(taken..).unwrap_or_default();
                if out.len() > max {
                    return Err(InflateError::TooLarge);
                }
                if status == Status::StreamEnd {
                    return Ok(out);
                }
                // This input is done when all of it is in and the output had room to spare.
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        Ok(out)
    })
}

/// `payload` compressed on its own, without the [`TAIL`].
fn deflate(compress: &mut Compress, mut payload: &[u8]) -> Vec<u8> {
    compress.reset();
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let before = compress.total_in();
        // In-memory compression cannot fail.
        let _ = compress.compress_vec(payload, &mut out, FlushCompress::Sync);
        payload = &payload[usize::try_from(compress.total_in() - before).unwrap_or(usize::MAX)..];
        if payload.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn headers(offer: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer.parse().unwrap());
        headers
    }

    #[test]
    fn offers_the_server_can_honour() {
        let agreed = |bits| {
            Some(Agreed {
                server_max_window_bits: bits,
            })
        };
        for (offer, expected) in [
            ("permessage-deflate", agreed(None)),
            ("permessage-deflate; client_max_window_bits", agreed(None)),
            (
                "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
                agreed(None),
            ),
            (
                "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15",
                agreed(Some(15)),
            ),
            // A smaller window, as Node's `ws` accepts.
            (
                "permessage-deflate; server_max_window_bits=10",
                agreed(Some(10)),
            ),
            (
                "permessage-deflate; server_max_window_bits=7, permessage-deflate",
                agreed(None),
            ),
            ("", None),
            ("x-webkit-deflate-frame", None),
            ("permessage-deflate; server_max_window_bits=7", None),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; unknown", None),
            ("permessage-deflate; client_max_window_bits=99", None),
        ] {
            assert_eq!(offered(&headers(offer)), expected, "{offer}");
        }
        assert_eq!(offered(&HeaderMap::new()), None);
        assert_eq!(
            agreed(Some(10)).unwrap().response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    /// `data` compressed as a client does, without the tail.
    pub(crate) fn deflate_raw(data: &[u8]) -> Vec<u8> {
        let mut compress = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        compress
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn server_frames_of_the_threshold_are_compressed() {
        let compressor = Compressor::new(16, usize::MAX);
        let big = "x".repeat(100);
        let mut wire = Vec::new();
        put_header(&mut wire, false, 1, big.len());
        wire.extend_from_slice(big.as_bytes());
        put_header(&mut wire, false, 1, 5);
        wire.extend_from_slice(b"small");
        let mut out = BytesMut::new();
        compressor.compress_frames(&wire, &mut out);
        let head = parse_header(&out).unwrap();
        assert!(head.rsv1 && head.fin && head.opcode == 1 && head.mask.is_none());
        let end = head.size + head.len as usize;
        assert_eq!(inflate(&out[head.size..end], 1000).unwrap(), big.as_bytes());
        let small = parse_header(&out[end..]).unwrap();
        assert!(!small.rsv1);
        assert_eq!(&out[end + small.size..], b"small");
    }

    /// With a window of 2^10 agreed, a message longer than 1 KiB goes out uncompressed: its
    /// back-references could reach past the client's window.
    #[test]
    fn messages_longer_than_a_smaller_window_are_not_compressed() {
        let window = Agreed {
            server_max_window_bits: Some(10),
        }
        .max_compressed();
        let compressor = Compressor::new(16, window);
        for (len, compressed) in [(1024, true), (1025, false)] {
            let mut wire = Vec::new();
            put_header(&mut wire, false, 1, len);
            wire.extend(std::iter::repeat_n(b'y', len));
            let mut out = BytesMut::new();
            compressor.compress_frames(&wire, &mut out);
            assert_eq!(parse_header(&out).unwrap().rsv1, compressed, "{len}");
        }
    }
}
