//! WebSocket permessage-deflate (RFC 7692), as Node's `perMessageDeflate`, under tungstenite,
//! which has no extensions: a stream between tungstenite and the socket that inflates the
//! client's compressed messages into plain frames, and compresses tungstenite's frames of at
//! least the threshold.
//!
//! Both sides compress each message on its own (`server_no_context_takeover;
//! client_no_context_takeover`, which RFC 7692 lets a server ask for): a connection keeps no
//! compression window between messages, and one compressor and one decompressor per thread
//! serve every connection.

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The `Sec-WebSocket-Extensions` answer when the client offered permessage-deflate.
pub(crate) const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The end of every compressed message, left out on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Whether the client offers permessage-deflate with parameters this server can honour (any
/// `client_max_window_bits`; `server_max_window_bits` only at 15, the compressor's window).
pub(crate) fn offered(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offer| {
            let mut params = offer.split(';').map(str::trim);
            params.next() == Some("permessage-deflate")
                && params.all(|param| {
                    let (name, value) = param.split_once('=').unwrap_or((param, ""));
                    let value = value.trim().trim_matches('"');
                    match name.trim() {
                        "server_no_context_takeover" | "client_no_context_takeover" => {
                            value.is_empty()
                        }
                        "client_max_window_bits" => {
                            value.is_empty()
                                || value.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b))
                        }
                        "server_max_window_bits" => value == "15",
                        _ => false,
                    }
                })
        })
}

thread_local! {
    /// Reset before each message: no context is taken over.
    static CODEC: RefCell<(Compress, Decompress)> = RefCell::new((
        Compress::new(Compression::default(), false),
        Decompress::new(false),
    ));
}

/// What one read from the socket takes at most; read into the stack, then kept only as long as
/// tungstenite has not taken it all.
const READ_CHUNK: usize = 8192;

/// The socket under tungstenite: as it is, or with permessage-deflate.
///
/// Reads are buffered here rather than in tungstenite: tungstenite's own read buffer, allocated
/// for the connection's whole life, can stay small (an idle connection holds no large buffer),
/// while a large frame still arrives in few system calls (each reads up to [`READ_CHUNK`]
/// bytes into the stack; what tungstenite does not take at once is kept until it does).
pub(crate) struct MaybeDeflate<S> {
    inner: S,
    /// Read from the socket, not yet taken by tungstenite: `leftover[leftover_at..]` (empty,
    /// without allocation, when idle). Tungstenite takes at most its read buffer's size per
    /// read (256 B by default), so a 4 KiB message is handed over in 16 pieces: a plain
    /// buffer and an index, not `Bytes` (whose splits count references).
    leftover: Vec<u8>,
    leftover_at: usize,
    /// Frames written around tungstenite ([`MaybeDeflate::write_frames`]) that the socket did
    /// not take at once, without permessage-deflate (with it, they go through `Deflate` as
    /// tungstenite's own do). Holds no allocation when idle.
    out: BytesMut,
    /// Tungstenite wrote (a pong, a close frame) since [`MaybeDeflate::tungstenite_flushed`]:
    /// it may hold part of a frame, and frames of ours must wait for a flush of the WebSocket.
    tungstenite_wrote: bool,
    deflate: Option<Box<Deflate>>,
}

impl<S> MaybeDeflate<S> {
    /// `inner` as it is (`threshold` `None`), or compressing messages of at least `threshold`
    /// bytes, inflating messages up to `max_message` bytes.
    pub(crate) fn new(inner: S, threshold: Option<usize>, max_message: usize) -> Self {
        MaybeDeflate {
            inner,
            leftover: Vec::new(),
            leftover_at: 0,
            out: BytesMut::new(),
            tungstenite_wrote: false,
            deflate: threshold.map(|threshold| {
                Box::new(Deflate {
                    threshold,
                    max_message,
                    ..Deflate::default()
                })
            }),
        }
    }

    /// True when tungstenite wrote since [`MaybeDeflate::tungstenite_flushed`]: the WebSocket
    /// stream must be flushed before [`MaybeDeflate::write_frames`].
    pub(crate) fn tungstenite_wrote(&self) -> bool {
        self.tungstenite_wrote
    }

    /// Notes a completed flush of the WebSocket stream: tungstenite holds nothing unwritten.
    pub(crate) fn tungstenite_flushed(&mut self) {
        self.tungstenite_wrote = false;
    }
}

thread_local! {
    /// Where a batch of frames is encoded before it is written: one buffer per worker thread,
    /// not one per connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The largest scratch buffer a thread keeps between batches.
const SCRATCH_KEEP: usize = 128 * 1024;

impl<S: AsyncWrite + Unpin> MaybeDeflate<S> {
    /// Writes frames for the client around tungstenite (the send queue's data frames, encoded
    /// by `encode` without a tungstenite `Message` each): encoded into the thread's scratch
    /// buffer and written at once; what the socket does not take is kept and written by
    /// [`AsyncWrite::poll_flush`], before anything tungstenite writes. Returns true when all
    /// is written.
    ///
    /// Only while tungstenite holds nothing unwritten ([`MaybeDeflate::tungstenite_wrote`]
    /// false), so that frames never interleave.
    pub(crate) fn write_frames(
        &mut self,
        cx: &mut Context<'_>,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            buf.clear();
            encode(&mut buf);
            if let Some(deflate) = self.deflate.as_mut() {
                deflate.raw_out.extend_from_slice(&buf);
                deflate.process_out();
            } else if !self.out.is_empty() {
                // Behind what waits already.
                self.out.extend_from_slice(&buf);
            } else {
                let mut written = 0;
                while written < buf.len() {
                    match Pin::new(&mut self.inner).poll_write(cx, &buf[written..]) {
                        Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Ready(Err(error)) => return Err(error),
                        Poll::Pending => break,
                    }
                }
                self.out.extend_from_slice(&buf[written..]);
            }
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            Ok(self.out.is_empty() && self.deflate.as_ref().is_none_or(|d| d.ready_out.is_empty()))
        })
    }
}

#[derive(Default)]
struct Deflate {
    threshold: usize,
    max_message: usize,
    /// Read from the client, not parsed yet.
    raw_in: BytesMut,
    /// Frames for tungstenite.
    ready_in: BytesMut,
    /// Payload bytes of the current frame still to come as they are.
    pass_in: u64,
    /// The compressed message being collected: its opcode, and its payload so far (unmasked).
    message: Option<(u8, BytesMut)>,
    /// The frame being collected into `message`: payload bytes still to come, its mask, and
    /// the position in it.
    collect: Option<(u64, [u8; 4], usize, bool)>,
    /// Written by tungstenite, not parsed yet.
    raw_out: BytesMut,
    /// Frames for the client.
    ready_out: BytesMut,
    /// Payload bytes of the current outgoing frame still to go as they are.
    pass_out: u64,
}

/// A frame header (RFC 6455 §5.2).
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    size: usize,
}

fn parse_header(buf: &[u8]) -> Option<Header> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, mut size) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        len => (u64::from(len), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = buf.get(size..size + 4)?.try_into().ok()?;
        size += 4;
        Some(key)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        size,
    })
}

/// Writes a frame header: FIN, RSV1 as given, the opcode, the length, and a zero mask key when
/// `masked` (a zero key leaves the payload as it is).
pub(super) fn put_header(out: &mut impl BufMut, rsv1: bool, opcode: u8, len: usize, masked: bool) {
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    match len {
        0..=125 => out.put_u8(mask_bit | len as u8),
        126..=0xffff => {
            out.put_u8(mask_bit | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(mask_bit | 127);
            out.put_u64(len as u64);
        }
    }
    if masked {
        out.put_u32(0);
    }
}

/// Moves up to `remaining` payload bytes, as they are, from `from` to `to`; false when `from`
/// has none.
fn forward(from: &mut BytesMut, to: &mut BytesMut, remaining: &mut u64) -> bool {
    let n = usize::try_from(*remaining)
        .unwrap_or(usize::MAX)
        .min(from.len());
    to.extend_from_slice(&from.split_to(n));
    *remaining -= n as u64;
    n > 0
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Deflate {
    /// Turns what arrived from the client into frames for tungstenite.
    fn process_in(&mut self) -> io::Result<()> {
        loop {
            if self.pass_in > 0 {
                if !forward(&mut self.raw_in, &mut self.ready_in, &mut self.pass_in) {
                    return Ok(());
                }
                continue;
            }
            if let Some((remaining, mask, pos, fin)) = self.collect {
                let n = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(self.raw_in.len());
                if n == 0 && remaining > 0 {
                    return Ok(());
                }
                let chunk = self.raw_in.split_to(n);
                let (_, data) = self
                    .message
                    .as_mut()
                    .expect("a frame is collected into a message");
                data.extend(
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[(pos + i) % 4]),
                );
                let remaining = remaining - n as u64;
                self.collect = Some((remaining, mask, pos + n, fin));
                if remaining == 0 {
                    self.collect = None;
                    if fin {
                        self.finish_message()?;
                    }
                }
                continue;
            }
            let Some(head) = parse_header(&self.raw_in) else {
                return Ok(());
            };
            let is_control = head.opcode >= 8;
            let starts_compressed = head.rsv1 && matches!(head.opcode, 1 | 2);
            let continues_compressed = head.opcode == 0 && self.message.is_some();
            if is_control || !(starts_compressed || continues_compressed) {
                // As it is: tungstenite judges it (and refuses what breaks the protocol).
                let header = self.raw_in.split_to(head.size);
                self.ready_in.extend_from_slice(&header);
                self.pass_in = head.len;
                continue;
            }
            if head.rsv1 && continues_compressed || head.mask.is_none() {
                return Err(invalid("malformed compressed frame"));
            }
            let collected = self.message.as_ref().map_or(0, |(_, data)| data.len());
            if head.len.saturating_add(collected as u64) > self.max_message as u64 {
                return Err(invalid("compressed message too large"));
            }
            self.raw_in.advance(head.size);
            if starts_compressed {
                if self.message.is_some() {
                    return Err(invalid("a new message inside a fragmented one"));
                }
                self.message = Some((head.opcode, BytesMut::new()));
            }
            let mask = head.mask.unwrap_or_default();
            self.collect = Some((head.len, mask, 0, head.fin));
            if head.len == 0 {
                self.collect = None;
                if head.fin {
                    self.finish_message()?;
                }
            }
        }
    }

    /// Inflates the collected message into one plain frame for tungstenite (masked with a zero
    /// key, as a client frame must be).
    fn finish_message(&mut self) -> io::Result<()> {
        let (opcode, mut data) = self
            .message
            .take()
            .expect("a finished message was collected");
        data.extend_from_slice(&TAIL);
        let plain =
            CODEC.with(|codec| inflate(&mut codec.borrow_mut().1, &data, self.max_message))?;
        put_header(&mut self.ready_in, false, opcode, plain.len(), true);
        self.ready_in.extend_from_slice(&plain);
        Ok(())
    }

    /// Turns tungstenite's frames into frames for the client, compressing whole data frames of
    /// at least the threshold.
    fn process_out(&mut self) {
        loop {
            if self.pass_out > 0 {
                if !forward(&mut self.raw_out, &mut self.ready_out, &mut self.pass_out) {
                    return;
                }
                continue;
            }
            let Some(head) = parse_header(&self.raw_out) else {
                return;
            };
            let len = usize::try_from(head.len).unwrap_or(usize::MAX);
            let compress = head.fin
                && !head.rsv1
                && head.mask.is_none()
                && matches!(head.opcode, 1 | 2)
                && len >= self.threshold;
            if !compress {
                let header = self.raw_out.split_to(head.size);
                self.ready_out.extend_from_slice(&header);
                self.pass_out = head.len;
                continue;
            }
            if self.raw_out.len() < head.size + len {
                return;
            }
            self.raw_out.advance(head.size);
            let payload = self.raw_out.split_to(len);
            let compressed = CODEC.with(|codec| deflate(&mut codec.borrow_mut().0, &payload));
            put_header(
                &mut self.ready_out,
                true,
                head.opcode,
                compressed.len(),
                false,
            );
            self.ready_out.extend_from_slice(&compressed);
        }
    }
}

/// `data` (a message and its [`TAIL`]) inflated, at most `max` bytes of it.
fn inflate(decompress: &mut Decompress, mut data: &[u8], max: usize) -> io::Result<Vec<u8>> {
    decompress.reset(false);
    let mut out = Vec::new();
    loop {
        if out.len() == out.capacity() {
            out.reserve(8192);
        }
        let before = decompress.total_in();
        let status = decompress
            .decompress_vec(data, &mut out, FlushDecompress::Sync)
            .map_err(|_| invalid("invalid deflate data"))?;
        data = &data[usize::try_from(decompress.total_in() - before).unwrap_or(usize::MAX)..];
        if out.len() > max {
            return Err(invalid("inflated message too large"));
        }
        // Done when all the input is in and the output had room to spare.
        if status == Status::StreamEnd || (data.is_empty() && out.len() < out.capacity()) {
            return Ok(out);
        }
    }
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

impl<S: AsyncRead + Unpin> AsyncRead for MaybeDeflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(deflate) = this.deflate.as_mut() else {
            return this.poll_read_buffered(cx, buf);
        };
        loop {
            if !deflate.ready_in.is_empty() {
                let n = deflate.ready_in.len().min(buf.remaining());
                buf.put_slice(&deflate.ready_in.split_to(n));
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The end: what is left goes to tungstenite as it is.
                let rest = deflate.raw_in.split();
                deflate.ready_in.extend_from_slice(&rest);
                if deflate.ready_in.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            deflate.raw_in.extend_from_slice(read.filled());
            deflate.process_in()?;
        }
    }
}

impl<S: AsyncRead + Unpin> MaybeDeflate<S> {
    /// Reads for tungstenite without permessage-deflate: what was kept first; a large read
    /// straight into tungstenite's buffer; a small one through a chunk on the stack.
    fn poll_read_buffered(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(rest) = self
            .leftover
            .get(self.leftover_at..)
            .filter(|r| !r.is_empty())
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.leftover_at += n;
            if self.leftover_at == self.leftover.len() {
                // All handed over: an idle connection keeps no buffer.
                self.leftover = Vec::new();
                self.leftover_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_CHUNK {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        // Not zeroed: the socket writes what it read, and only that is looked at.
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut read = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut read))?;
        let filled = read.filled();
        let n = filled.len().min(buf.remaining());
        buf.put_slice(&filled[..n]);
        if n < filled.len() {
            self.leftover = filled[n..].to_vec();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> MaybeDeflate<S> {
    /// Writes what is ready for the client; ready once all of it is written.
    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ready = match self.deflate.as_mut() {
            Some(deflate) => &mut deflate.ready_out,
            None => &mut self.out,
        };
        if ready.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while !ready.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, ready))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            ready.advance(n);
        }
        // Written: an idle connection keeps no buffer.
        *ready = BytesMut::new();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MaybeDeflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.tungstenite_wrote = true;
        if this.deflate.is_none() {
            // Frames written around tungstenite go first.
            ready!(this.poll_write_ready(cx))?;
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        // Backpressure: what is ready goes out before more is taken.
        ready!(this.poll_write_ready(cx))?;
        let deflate = this.deflate.as_mut().expect("checked above");
        deflate.raw_out.extend_from_slice(buf);
        deflate.process_out();
        // Start writing; what does not fit now is written by the next write or flush.
        let _ = this.poll_write_ready(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_ready(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_ready(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(offer: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer.parse().unwrap());
        headers
    }

    #[test]
    fn offers_the_server_can_honour() {
        for offer in [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15",
        ] {
            assert!(offered(&headers(offer)), "{offer}");
        }
        for offer in [
            "",
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; unknown",
            "permessage-deflate; client_max_window_bits=99",
        ] {
            assert!(!offered(&headers(offer)), "{offer}");
        }
        assert!(!offered(&HeaderMap::new()));
    }

    /// A client frame: masked with `mask`.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(first);
        let len = payload.len();
        if len < 126 {
            out.put_u8(0x80 | len as u8);
        } else {
            out.put_u8(0x80 | 126);
            out.put_u16(len as u16);
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out.to_vec()
    }

    fn deflate_raw(data: &[u8]) -> Vec<u8> {
        let mut compress = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        compress
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        out.truncate(out.len() - 4);
        out
    }

    fn state(max: usize) -> Deflate {
        Deflate {
            threshold: 16,
            max_message: max,
            ..Deflate::default()
        }
    }

    #[test]
    fn compressed_client_messages_become_plain_frames() {
        let text = "hello hello hello hello".repeat(10);
        let compressed = deflate_raw(text.as_bytes());
        let (a, b) = compressed.split_at(compressed.len() / 2);
        let mut d = state(1 << 20);
        // Fragmented, with a ping between the fragments, fed one byte at a time.
        let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
        wire.extend(client_frame(0x89, b"p", [5, 6, 7, 8]));
        wire.extend(client_frame(0x80, b, [9, 9, 9, 9]));
        wire.extend(client_frame(0x81, b"plain", [0, 1, 0, 1]));
        for byte in wire {
            d.raw_in.put_u8(byte);
            d.process_in().unwrap();
        }
        let out = d.ready_in.to_vec();
        // The ping as it came, then the inflated message, then the plain one.
        let ping = client_frame(0x89, b"p", [5, 6, 7, 8]);
        assert_eq!(&out[..ping.len()], &ping[..]);
        let rest = &out[ping.len()..];
        let head = parse_header(rest).unwrap();
        assert!(head.fin && !head.rsv1 && head.opcode == 1);
        assert_eq!(head.mask, Some([0; 4]));
        let end = head.size + head.len as usize;
        assert_eq!(&rest[head.size..end], text.as_bytes());
        assert_eq!(
            &rest[end..],
            &client_frame(0x81, b"plain", [0, 1, 0, 1])[..]
        );
    }

    #[test]
    fn inflating_is_bounded() {
        let bomb = deflate_raw(&vec![b'a'; 100_000]);
        let mut d = state(10_000);
        d.raw_in
            .extend_from_slice(&client_frame(0xc1, &bomb, [1, 2, 3, 4]));
        assert!(d.process_in().is_err());
        let mut d = state(10_000);
        d.raw_in
            .extend_from_slice(&client_frame(0xc1, &[0xff; 50], [1, 2, 3, 4]));
        assert!(d.process_in().is_err(), "invalid deflate data");
    }

    #[test]
    fn server_frames_of_the_threshold_are_compressed() {
        let mut d = state(1 << 20);
        let big = "x".repeat(100);
        let mut wire = BytesMut::new();
        put_header(&mut wire, false, 1, big.len(), false);
        wire.extend_from_slice(big.as_bytes());
        put_header(&mut wire, false, 1, 5, false);
        wire.extend_from_slice(b"small");
        for chunk in wire.chunks(7) {
            d.raw_out.extend_from_slice(chunk);
            d.process_out();
        }
        let out = d.ready_out.to_vec();
        let head = parse_header(&out).unwrap();
        assert!(head.rsv1 && head.fin && head.opcode == 1 && head.mask.is_none());
        let end = head.size + head.len as usize;
        let mut inflate = Decompress::new(false);
        let mut plain = Vec::with_capacity(200);
        let data = [&out[head.size..end], &TAIL[..]].concat();
        inflate
            .decompress_vec(&data, &mut plain, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(plain, big.as_bytes());
        let small = parse_header(&out[end..]).unwrap();
        assert!(!small.rsv1);
        assert_eq!(&out[end + small.size..], b"small");
    }
}
