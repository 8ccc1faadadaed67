//! An established WebSocket connection (RFC 6455), read and written here rather than through
//! tungstenite's `WebSocketStream`: one read from the socket takes every frame it holds, a
//! message is unmasked straight from that read into its own buffer, and the send queue's
//! packets go out as frames encoded into one buffer and written at once.
//!
//! What the server must enforce on what it reads is enforced here: masked client frames,
//! known opcodes, no reserved bits (but the compression bit where permessage-deflate was
//! agreed), control frames whole and at most 125 bytes, continuations only inside a fragmented
//! message, messages at most the payload limit (checked on the header, before the payload is
//! read), text in UTF-8 (checked on the whole message), close frames with a valid code and
//! reason. A ping is answered with a pong, a close frame with a close frame.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::deflate::{self, Compressor};
use crate::Str;

/// A message from the client.
pub(crate) enum Incoming {
    Text(Str),
    Binary(Bytes),
}

/// Why reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The client sent a close frame (answered).
    Closed,
    /// The stream ended or failed: nothing more can be written either.
    Gone,
    /// The client broke the protocol: the connection is closed with this code.
    Violation(u16),
}

/// What one read from the socket takes at most, into the stack when nothing is held.
const READ_CHUNK: usize = 8192;

/// The least payload that [`WsConn::write_direct`] writes from its own buffer: below it, copying
/// the frame into the write buffer costs less than a vectored write.
const DIRECT_WRITE: usize = 1024;

/// The most a buffer for one large frame grows per read (zeroed as it grows).
const GROW_CHUNK: usize = 256 * 1024;

/// A frame header (RFC 6455 §5.2).
pub(super) struct Header {
    pub(super) fin: bool,
    pub(super) rsv1: bool,
    /// RSV2 or RSV3.
    pub(super) rsv23: bool,
    pub(super) opcode: u8,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) len: u64,
    /// The header's own length.
    pub(super) size: usize,
}

/// The header at the start of `buf`; `None` until all of it is there.
pub(super) fn parse_header(buf: &[u8]) -> Option<Header> {
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
        rsv23: b0 & 0x30 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        size,
    })
}

/// Writes the header of an unmasked (server) frame: FIN, RSV1 as given, the opcode, the length.
pub(super) fn put_header(out: &mut impl BufMut, rsv1: bool, opcode: u8, len: usize) {
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xffff => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// Unmasks `data` in place, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes(word.try_into().expect("chunks of eight")) ^ key;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Whether a close frame may carry `code` (RFC 6455 §7.4, and the IANA registry).
fn is_sendable_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented or compressed message being collected.
struct Partial {
    /// 1 (text) or 2 (binary).
    opcode: u8,
    compressed: bool,
    /// The payload so far, unmasked (still compressed when `compressed`).
    data: Vec<u8>,
}

/// The reading half's state.
struct Reader {
    /// The largest message (and frame), in bytes.
    max: usize,
    /// Whether permessage-deflate was agreed (RSV1 marks a compressed message).
    inflate: bool,
    partial: Option<Partial>,
    /// Reading ended; every later read ends the same way.
    ended: Option<ReadEnd>,
}

/// The writing half's state: frames not written yet.
struct Writer {
    /// Frames for the client (with permessage-deflate, already compressed). Holds no
    /// allocation when idle.
    out: BytesMut,
    compressor: Option<Box<Compressor>>,
    /// The answer to the latest ping, while earlier frames wait to be written: a client that
    /// pings without reading gets one pong when it reads again, not one per ping (RFC 6455
    /// §5.5.3 allows it), so what waits stays bounded.
    pong: Option<Box<[u8]>>,
    close_sent: bool,
}

impl Writer {
    /// Answers a ping: at once when nothing waits, else the pong replaces any pong waiting.
    fn pong(&mut self, payload: &[u8]) {
        if self.out.is_empty() {
            self.control(10, payload);
        } else {
            self.pong = Some(payload.into());
        }
    }

    /// Appends a control frame (not compressed), after everything queued before it.
    fn control(&mut self, opcode: u8, payload: &[u8]) {
        put_header(&mut self.out, false, opcode, payload.len());
        self.out.extend_from_slice(payload);
    }

    /// Appends a close frame, once: with `code`, or empty. A pong still waiting is dropped:
    /// nothing follows a close frame.
    fn close(&mut self, code: Option<u16>) {
        self.pong = None;
        if !std::mem::replace(&mut self.close_sent, true) {
            match code {
                Some(code) => self.control(8, &code.to_be_bytes()),
                None => self.control(8, &[]),
            }
        }
    }
}

/// An established WebSocket connection on `S`, the server's side.
pub(crate) struct WsConn<S> {
    io: S,
    /// Read from the socket, not taken as frames yet: `held[at..]`, the start of a frame (no
    /// allocation when empty, which is when the connection is idle).
    held: Vec<u8>,
    at: usize,
    reader: Reader,
    writer: Writer,
}

impl<S> WsConn<S> {
    /// `io` after the handshake: messages up to `max` bytes; with permessage-deflate when
    /// `compress` is set: `(threshold, longest)`, messages of that many bytes are compressed.
    pub(crate) fn new(io: S, compress: Option<(usize, usize)>, max: usize) -> Self {
        WsConn {
            io,
            held: Vec::new(),
            at: 0,
            reader: Reader {
                max,
                inflate: compress.is_some(),
                partial: None,
                ended: None,
            },
            writer: Writer {
                out: BytesMut::new(),
                compressor: compress
                    .map(|(threshold, longest)| Box::new(Compressor::new(threshold, longest))),
                pong: None,
                close_sent: false,
            },
        }
    }

    /// Whether the stream ended or failed while reading: nothing is worth writing.
    pub(crate) fn is_gone(&self) -> bool {
        self.reader.ended == Some(ReadEnd::Gone)
    }

    /// Whether frames wait to be written ([`WsConn::poll_flush`] writes them).
    pub(crate) fn has_unwritten(&self) -> bool {
        !self.writer.out.is_empty() || self.writer.pong.is_some()
    }

    /// Queues a close frame with `code` (or none), unless one was sent already (an answer to
    /// the client's).
    pub(crate) fn queue_close(&mut self, code: Option<u16>) {
        self.writer.close(code);
    }
}

impl<S: AsyncRead + Unpin> WsConn<S> {
    /// Reads what arrived and hands each message to `on_message`, which returns false to stop
    /// (what follows is kept for the next read). Pending once the socket has nothing more;
    /// ready with `Ok` when `on_message` stopped, with the end when the connection is done.
    /// A message of several reads is kept until complete.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        mut on_message: impl FnMut(Incoming) -> bool,
    ) -> Poll<Result<(), ReadEnd>> {
        if let Some(end) = self.reader.ended {
            return Poll::Ready(Err(end));
        }
        let result = self.read_frames(cx, &mut on_message);
        if let Poll::Ready(Err(end)) = result {
            self.reader.ended = Some(end);
            self.reader.partial = None;
            self.held = Vec::new();
            self.at = 0;
        }
        result
    }

    fn read_frames(
        &mut self,
        cx: &mut Context<'_>,
        on_message: &mut impl FnMut(Incoming) -> bool,
    ) -> Poll<Result<(), ReadEnd>> {
        loop {
            if self.at < self.held.len() {
                let (used, stopped) =
                    self.reader
                        .frames(&mut self.writer, &mut self.held[self.at..], on_message)?;
                self.at += used;
                if self.at == self.held.len() {
                    self.held = Vec::new();
                    self.at = 0;
                }
                if stopped {
                    return Poll::Ready(Ok(()));
                }
            }
            if self.at > 0 {
                // The start of a frame is held: move it to the front.
                self.held.drain(..self.at);
                self.at = 0;
            }
            if self.held.len() >= READ_CHUNK {
                // A large frame: read straight into its buffer.
                ready!(self.read_held(cx))?;
                continue;
            }
            // Read into the stack; with nothing held, take the frames there and keep the rest.
            let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            if ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)).is_err() {
                return Poll::Ready(Err(ReadEnd::Gone));
            }
            let read = buf.filled_mut();
            if read.is_empty() {
                return Poll::Ready(Err(ReadEnd::Gone));
            }
            if !self.held.is_empty() {
                self.held.extend_from_slice(read);
                continue;
            }
            let (used, stopped) = self.reader.frames(&mut self.writer, read, on_message)?;
            if used < read.len() {
                self.held = read[used..].to_vec();
            }
            if stopped {
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Reads more of the large frame held, into its buffer: it grows by what the frame still
    /// needs, but at most by what has arrived already (a header announcing a large frame
    /// reserves nothing the client has not sent) and at most [`GROW_CHUNK`] per read.
    fn read_held(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadEnd>> {
        let frame = parse_header(&self.held).map_or(0, |h| {
            h.size.saturating_add(usize::try_from(h.len).unwrap_or(0))
        });
        let filled = self.held.len();
        let want = frame
            .saturating_sub(filled)
            .clamp(READ_CHUNK, GROW_CHUNK.min(filled));
        self.held.resize(filled + want, 0);
        let mut buf = ReadBuf::new(&mut self.held[filled..]);
        let result = Pin::new(&mut self.io).poll_read(cx, &mut buf);
        let n = buf.filled().len();
        self.held.truncate(filled + n);
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if n > 0 => Poll::Ready(Ok(())),
            Poll::Ready(_) => Poll::Ready(Err(ReadEnd::Gone)),
        }
    }
}

impl Reader {
    /// Takes the whole frames at the start of `buf` (unmasking their payloads in place):
    /// answers control frames into `writer`, hands messages to `on_message`. Returns how many
    /// bytes it took and whether `on_message` asked to stop.
    fn frames(
        &mut self,
        writer: &mut Writer,
        buf: &mut [u8],
        on_message: &mut impl FnMut(Incoming) -> bool,
    ) -> Result<(usize, bool), ReadEnd> {
        let mut pos = 0;
        loop {
            let Some(head) = parse_header(&buf[pos..]) else {
                return Ok((pos, false));
            };
            let len = self.check(&head)?;
            let Some(payload) = buf.get_mut(pos + head.size..pos + head.size + len) else {
                return Ok((pos, false));
            };
            pos += head.size + len;
            unmask(
                payload,
                head.mask.expect("checked: client frames are masked"),
            );
            match head.opcode {
                9 => writer.pong(payload),
                10 => {}
                8 => return Err(close(writer, payload)),
                opcode => {
                    let message = if head.fin && opcode != 0 && !head.rsv1 {
                        // The common case: a whole message in one frame.
                        message(opcode, copy(payload))?
                    } else {
                        let partial = self.partial.get_or_insert_with(|| Partial {
                            opcode,
                            compressed: head.rsv1,
                            data: Vec::new(),
                        });
                        partial.data.extend_from_slice(payload);
                        if !head.fin {
                            continue;
                        }
                        let Partial {
                            opcode,
                            compressed,
                            data,
                        } = self.partial.take().expect("inserted above");
                        let data = if compressed {
                            deflate::inflate(&data, self.max).map_err(|e| match e {
                                deflate::InflateError::TooLarge => ReadEnd::Violation(1009),
                                deflate::InflateError::Invalid => ReadEnd::Violation(1007),
                            })?
                        } else {
                            data
                        };
                        message(opcode, data)?
                    };
                    if !on_message(message) {
                        return Ok((pos, true));
                    }
                }
            }
        }
    }

    /// Checks a frame's header against the protocol and the limit; returns its payload length.
    fn check(&self, head: &Header) -> Result<usize, ReadEnd> {
        const PROTOCOL: ReadEnd = ReadEnd::Violation(1002);
        let control = head.opcode >= 8;
        let known = matches!(head.opcode, 0..=2 | 8..=10);
        let rsv1_allowed = self.inflate && matches!(head.opcode, 1 | 2);
        if head.mask.is_none() || head.rsv23 || !known || (head.rsv1 && !rsv1_allowed) {
            return Err(PROTOCOL);
        }
        if control && (!head.fin || head.len > 125) {
            return Err(PROTOCOL);
        }
        if !control && (head.opcode == 0) != self.partial.is_some() {
            // A continuation outside a fragmented message, or a new message inside one.
            return Err(PROTOCOL);
        }
        let collected = self.partial.as_ref().map_or(0, |p| p.data.len());
        match usize::try_from(head.len) {
            Ok(len) if len.saturating_add(collected) <= self.max => Ok(len),
            _ => Err(ReadEnd::Violation(1009)),
        }
    }
}

/// A whole message's payload as a message: text checked for UTF-8.
fn message(opcode: u8, data: impl Into<Bytes>) -> Result<Incoming, ReadEnd> {
    let data = data.into();
    if opcode == 1 {
        Str::try_from(data)
            .map(Incoming::Text)
            .map_err(|_| ReadEnd::Violation(1007))
    } else {
        Ok(Incoming::Binary(data))
    }
}

/// The most bytes a message copied with its reference count in one allocation holds.
const SHORT: usize = 111;

/// A short message's bytes, in the allocation that `Bytes::from_owner` makes for its
/// reference count.
struct Short {
    len: u8,
    data: [u8; SHORT],
}

impl AsRef<[u8]> for Short {
    fn as_ref(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// A copy of `payload` that is cheap to share. A `Bytes` made from a `Vec` allocates its
/// reference count when first shared (the decoder shares every message: its arguments are
/// slices of it), so a short message is copied into one allocation with its count instead.
fn copy(payload: &[u8]) -> Bytes {
    match u8::try_from(payload.len()) {
        Ok(len) if payload.len() <= SHORT => {
            let mut short = Short {
                len,
                data: [0; SHORT],
            };
            short.data[..payload.len()].copy_from_slice(payload);
            Bytes::from_owner(short)
        }
        _ => Bytes::copy_from_slice(payload),
    }
}

/// Acts on the client's close frame: a valid one is answered with its code, an invalid one is
/// a protocol violation.
fn close(writer: &mut Writer, payload: &[u8]) -> ReadEnd {
    match payload {
        [] => {
            writer.close(None);
            ReadEnd::Closed
        }
        [_] => ReadEnd::Violation(1002),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !is_sendable_code(code) {
                ReadEnd::Violation(1002)
            } else if std::str::from_utf8(reason).is_err() {
                ReadEnd::Violation(1007)
            } else {
                writer.close(Some(code));
                ReadEnd::Closed
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> WsConn<S> {
    /// Writes frames encoded by `encode` (the send queue's packets, unmasked data frames): into
    /// the thread's scratch buffer, compressed where agreed, written at once after what waits
    /// already; what the socket does not take now is kept for [`WsConn::poll_flush`]. Returns
    /// true when all is written.
    pub(crate) fn write_frames(
        &mut self,
        cx: &mut Context<'_>,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<bool> {
        let Writer {
            out, compressor, ..
        } = &mut self.writer;
        deflate::with_scratch(|buf| {
            encode(buf);
            if let Some(compressor) = compressor {
                compressor.compress_frames(buf, out);
                return Ok(());
            }
            if !out.is_empty() {
                // Behind what waits already.
                out.extend_from_slice(buf);
                return Ok(());
            }
            let mut written = 0;
            while written < buf.len() {
                match Pin::new(&mut self.io).poll_write(cx, &buf[written..]) {
                    Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(error)) => return Err(error),
                    Poll::Pending => break,
                }
            }
            out.extend_from_slice(&buf[written..]);
            Ok(())
        })?;
        if !self.has_unwritten() {
            return Ok(true);
        }
        Ok(self.poll_write_out(cx)?.is_ready())
    }

    /// Whether a frame of `len` payload bytes can be written by [`WsConn::write_direct`]:
    /// large, nothing waiting before it, no compression, a stream that writes vectors.
    pub(crate) fn writes_direct(&self, len: usize) -> bool {
        len >= DIRECT_WRITE
            && self.writer.compressor.is_none()
            && !self.has_unwritten()
            && self.io.is_write_vectored()
    }

    /// Writes one unmasked frame whose payload is `parts` (two at most) with its header in one
    /// vectored write, straight from the packet's buffers: a large payload is not copied into a
    /// write buffer first. What the socket does not take now is kept for
    /// [`WsConn::poll_flush`]. Returns true when all is written. Only when
    /// [`WsConn::writes_direct`] says so.
    pub(crate) fn write_direct(
        &mut self,
        cx: &mut Context<'_>,
        opcode: u8,
        parts: [&[u8]; 2],
    ) -> io::Result<bool> {
        let mut head = [0u8; 10];
        let head_len = {
            let mut cursor = &mut head[..];
            put_header(&mut cursor, false, opcode, parts[0].len() + parts[1].len());
            10 - cursor.len()
        };
        let mut pieces = [&head[..head_len], parts[0], parts[1]];
        loop {
            let slices = pieces.map(io::IoSlice::new);
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(mut n)) => {
                    for piece in &mut pieces {
                        let taken = n.min(piece.len());
                        *piece = &piece[taken..];
                        n -= taken;
                    }
                    if pieces.iter().all(|piece| piece.is_empty()) {
                        return Ok(true);
                    }
                }
                Poll::Ready(Err(error)) => return Err(error),
                Poll::Pending => break,
            }
        }
        for piece in pieces {
            self.writer.out.extend_from_slice(piece);
        }
        Ok(self.poll_write_out(cx)?.is_ready())
    }

    /// Writes what waits; ready once all of it is written.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.has_unwritten() {
            return Poll::Ready(Ok(()));
        }
        loop {
            let out = &mut self.writer.out;
            while !out.is_empty() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, out))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                out.advance(n);
            }
            match self.writer.pong.take() {
                Some(payload) => self.writer.control(10, &payload),
                None => break,
            }
        }
        // Written: an idle connection keeps no buffer.
        self.writer.out = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// Writes and flushes what waits.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes what waits (a close frame last), then shuts the socket's sending side.
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// Sends one text message and flushes it.
    pub(crate) async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let mut written = false;
        std::future::poll_fn(|cx| {
            if !written {
                written = true;
                self.write_frames(cx, |out| {
                    put_header(out, false, 1, text.len());
                    out.extend_from_slice(text.as_bytes());
                })?;
            }
            self.poll_flush(cx)
        })
        .await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsConn<S> {
    /// The next message; `Err` when the connection is done. Answers to control frames are
    /// written on the way.
    pub(crate) async fn next_message(&mut self) -> Result<Incoming, ReadEnd> {
        std::future::poll_fn(|cx| {
            let mut got = None;
            let result = self.poll_read(cx, |message| {
                got = Some(message);
                false
            });
            if self.has_unwritten()
                && let Poll::Ready(Err(_)) = self.poll_flush(cx)
            {
                return Poll::Ready(Err(ReadEnd::Gone));
            }
            match result {
                Poll::Ready(Ok(())) => Poll::Ready(got.ok_or(ReadEnd::Gone)),
                Poll::Ready(Err(end)) => Poll::Ready(Err(end)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Sends a close frame (unless one was sent, or the stream is gone) and shuts the
    /// connection down.
    pub(crate) async fn close(&mut self, code: Option<u16>) {
        if self.is_gone() {
            return;
        }
        self.queue_close(code);
        let _ = std::future::poll_fn(|cx| self.poll_shutdown(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_every_length_are_copied_whole() {
        for len in [0, 1, 32, SHORT - 1, SHORT, SHORT + 1, 255, 256, 4096] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let copied = copy(&payload);
            assert_eq!(copied, payload, "{len} bytes");
            // Shared and sliced, as the decoder does, both ends still read the same bytes.
            let shared = copied.clone();
            drop(copied);
            assert_eq!(shared.slice(len / 2..), payload[len / 2..], "{len} bytes");
        }
    }

    /// A client frame: masked with `mask`.
    pub(crate) fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u8(first);
        let len = payload.len();
        if len < 126 {
            out.put_u8(0x80 | len as u8);
        } else if len <= 0xffff {
            out.put_u8(0x80 | 126);
            out.put_u16(len as u16);
        } else {
            out.put_u8(0x80 | 127);
            out.put_u64(len as u64);
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn reader(inflate: bool) -> (Reader, Writer) {
        let reader = Reader {
            max: 1 << 20,
            inflate,
            partial: None,
            ended: None,
        };
        let writer = Writer {
            out: BytesMut::new(),
            compressor: None,
            pong: None,
            close_sent: false,
        };
        (reader, writer)
    }

    /// Feeds `wire` in pieces of `step` bytes, as the connection does; returns the messages as
    /// (opcode, bytes) and the end, if any.
    fn feed(
        reader: &mut Reader,
        writer: &mut Writer,
        wire: &[u8],
        step: usize,
    ) -> (Vec<(u8, Vec<u8>)>, Option<ReadEnd>) {
        let mut held = Vec::new();
        let mut messages = Vec::new();
        for piece in wire.chunks(step) {
            held.extend_from_slice(piece);
            let result = reader.frames(writer, &mut held, &mut |m| {
                messages.push(match m {
                    Incoming::Text(t) => (1, t.as_bytes().to_vec()),
                    Incoming::Binary(b) => (2, b.to_vec()),
                });
                true
            });
            match result {
                Ok((used, _)) => drop(held.drain(..used)),
                Err(end) => return (messages, Some(end)),
            }
        }
        (messages, None)
    }

    proptest::proptest! {
        /// Any bytes, cut anywhere: no panic, and the messages and the end do not depend on
        /// where the reads were cut.
        #[test]
        fn any_input_cut_anywhere_reads_the_same(
            wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            frames in proptest::collection::vec(
                (proptest::prelude::any::<u8>(), proptest::collection::vec(0u8..128, 0..140)),
                0..6,
            ),
            step in 1usize..64,
            inflate in proptest::prelude::any::<bool>(),
        ) {
            // Random bytes, then well-formed frames with random first bytes (opcodes, FIN and
            // reserved bits): the rules are reached, not only the header parser.
            let mut input = wire;
            for (first, payload) in &frames {
                input.extend(client_frame(*first, payload, [7, 1, 2, 9]));
            }
            let (mut r, mut w) = reader(inflate);
            r.max = 100;
            let whole = feed(&mut r, &mut w, &input, input.len().max(1));
            let (mut r, mut w) = reader(inflate);
            r.max = 100;
            let cut = feed(&mut r, &mut w, &input, step);
            proptest::prop_assert_eq!(whole, cut);
        }
    }

    #[test]
    fn unmasking_matches_the_byte_rule() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mask = [0x12, 0x34, 0x56, 0x78];
            let mut fast = data.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "{len}");
        }
    }

    #[test]
    fn frames_split_anywhere_make_the_same_messages() {
        let mut wire = client_frame(0x81, b"4hello", [1, 2, 3, 4]);
        wire.extend(client_frame(
            0x01,
            "4é".as_bytes().split_at(2).0,
            [5, 6, 7, 8],
        ));
        wire.extend(client_frame(0x89, b"p", [5, 6, 7, 8]));
        wire.extend(client_frame(
            0x80,
            "4é".as_bytes().split_at(2).1,
            [9, 9, 9, 9],
        ));
        wire.extend(client_frame(0x82, &[0u8; 300], [0, 1, 0, 1]));
        for step in [1, 2, 3, 7, 64, wire.len()] {
            let (mut r, mut w) = reader(false);
            let (messages, end) = feed(&mut r, &mut w, &wire, step);
            assert_eq!(end, None);
            assert_eq!(
                messages,
                vec![
                    (1, b"4hello".to_vec()),
                    (1, "4é".as_bytes().to_vec()),
                    (2, vec![0u8; 300])
                ],
                "{step}"
            );
            assert_eq!(&w.out[..], &[0x8a, 1, b'p'], "the ping is answered");
        }
    }

    #[test]
    fn compressed_messages_are_inflated() {
        let text = "hello hello hello hello".repeat(10);
        let compressed = deflate::tests::deflate_raw(text.as_bytes());
        let (a, b) = compressed.split_at(compressed.len() / 2);
        let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
        wire.extend(client_frame(0x80, b, [9, 9, 9, 9]));
        wire.extend(client_frame(0xc2, &compressed, [3, 3, 3, 3]));
        let (mut r, mut w) = reader(true);
        let (messages, end) = feed(&mut r, &mut w, &wire, 5);
        assert_eq!(end, None);
        assert_eq!(
            messages,
            vec![(1, text.clone().into_bytes()), (2, text.into_bytes())]
        );
        // Without the extension agreed, RSV1 is a violation.
        let (mut r, mut w) = reader(false);
        let (_, end) = feed(&mut r, &mut w, &wire, wire.len());
        assert_eq!(end, Some(ReadEnd::Violation(1002)));
        // RSV1 on a continuation is one too.
        let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
        wire.extend(client_frame(0xc0, b, [9, 9, 9, 9]));
        let (mut r, mut w) = reader(true);
        assert_eq!(
            feed(&mut r, &mut w, &wire, wire.len()).1,
            Some(ReadEnd::Violation(1002))
        );
    }

    #[test]
    fn inflated_messages_are_bounded() {
        let bomb = deflate::tests::deflate_raw(&vec![b'a'; 100_000]);
        let (mut r, mut w) = reader(true);
        r.max = 10_000;
        let wire = client_frame(0xc1, &bomb, [1, 2, 3, 4]);
        assert_eq!(
            feed(&mut r, &mut w, &wire, wire.len()).1,
            Some(ReadEnd::Violation(1009))
        );
        let (mut r, mut w) = reader(true);
        let wire = client_frame(0xc1, &[0xff; 50], [1, 2, 3, 4]);
        assert_eq!(
            feed(&mut r, &mut w, &wire, wire.len()).1,
            Some(ReadEnd::Violation(1007))
        );
    }

    #[tokio::test]
    async fn a_large_frame_is_buffered_as_it_arrives() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1 << 21);
        let mut conn = WsConn::new(server, None, 1 << 20);
        let payload: Vec<u8> = (0..600_000u32).map(|i| i as u8).collect();
        let wire = client_frame(0x82, &payload, [1, 2, 3, 4]);
        // The header announces 600 KB; 20 bytes of it arrive.
        client.write_all(&wire[..34]).await.unwrap();
        let pending = std::future::poll_fn(|cx| {
            Poll::Ready(conn.poll_read(cx, |_| panic!("not whole yet")).is_pending())
        })
        .await;
        assert!(pending);
        assert!(
            conn.held.capacity() < 2 * READ_CHUNK,
            "nothing reserved ahead"
        );
        // The rest arrives in pieces; the message comes out whole.
        let writer = tokio::spawn(async move {
            for piece in wire[34..].chunks(50_000) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        let mut got = None;
        std::future::poll_fn(|cx| {
            conn.poll_read(cx, |message| {
                got = Some(message);
                false
            })
        })
        .await
        .unwrap();
        let Some(Incoming::Binary(data)) = got else {
            panic!("one binary message");
        };
        assert_eq!(&data[..], &payload[..]);
        assert!(
            conn.held.is_empty() && conn.held.capacity() == 0,
            "nothing kept"
        );
        drop(writer.await.unwrap());
    }

    #[test]
    fn pings_while_frames_wait_keep_one_pong() {
        let (mut r, mut w) = reader(false);
        let mut wire = Vec::new();
        for i in 0..10_000u32 {
            wire.extend(client_frame(0x89, &i.to_be_bytes(), [1, 2, 3, 4]));
        }
        assert_eq!(feed(&mut r, &mut w, &wire, 4096).1, None);
        // The first ping's pong waits to be written, and one for the latest.
        assert_eq!(&w.out[..], &[0x8a, 4, 0, 0, 0, 0]);
        assert_eq!(w.pong.as_deref(), Some(&9_999u32.to_be_bytes()[..]));
        // A close frame goes last: the pong waiting is dropped.
        w.close(Some(1000));
        assert!(w.pong.is_none());
    }

    #[test]
    fn close_frames_are_answered_once() {
        let (mut r, mut w) = reader(false);
        let wire = client_frame(0x88, &[0x03, 0xe8, b'o', b'k'], [1, 2, 3, 4]);
        assert_eq!(
            feed(&mut r, &mut w, &wire, wire.len()).1,
            Some(ReadEnd::Closed)
        );
        w.close(Some(1011));
        assert_eq!(
            &w.out[..],
            &[0x88, 2, 0x03, 0xe8],
            "the client's code, once"
        );
    }
}
