//! An established WebSocket connection (RFC 6455), read and written here rather than through
//! tungstenite's `WebSocketStream`: one read from the socket takes every frame it holds, a
//! message is unmasked straight from that read into its own buffer, and the send queue's
//! packets go out as frames encoded into one buffer and written at once. The frames themselves
//! are read and answered by the sans-IO codec in [`super::frame`].

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{
    deflate::{self, Compressor},
    frame::{FrameReader, Incoming, Outbox, ReadEnd, opcode, parse_header, put_header},
};

/// What one read from the socket takes at most, into the stack when nothing is held.
const READ_CHUNK: usize = 8192;

/// The least payload that [`WsConn::write_direct`] writes from its own buffer: below it, copying
/// the frame into the write buffer costs less than a vectored write.
const DIRECT_WRITE: usize = 1024;

/// The most a buffer for one large frame grows per read (zeroed as it grows).
const GROW_CHUNK: usize = 256 * 1024;

/// An established WebSocket connection on `S`, the server's side.
pub(crate) struct WsConn<S> {
    io: S,
    /// Read from the socket, not taken as frames yet: `held[at..]`, the start of a frame (no
    /// allocation when empty, which is when the connection is idle).
    held: Vec<u8>,
    at: usize,
    reader: FrameReader,
    writer: Outbox,
}

impl<S> WsConn<S> {
    /// `io` after the handshake: messages up to `max` bytes; with permessage-deflate when
    /// `compress` is set: `(threshold, longest)`, messages of that many bytes are compressed.
    pub(crate) fn new(io: S, compress: Option<(usize, usize)>, max: usize) -> Self {
        WsConn {
            io,
            held: Vec::new(),
            at: 0,
            reader: FrameReader::new(max, compress.is_some()),
            writer: Outbox::new(
                compress.map(|(threshold, longest)| Compressor::new(threshold, longest)),
            ),
        }
    }

    /// Whether the stream ended or failed while reading: nothing is worth writing.
    pub(crate) fn is_gone(&self) -> bool {
        self.reader.ended == Some(ReadEnd::Gone)
    }

    /// Whether frames wait to be written ([`WsConn::poll_flush`] writes them).
    pub(crate) fn has_unwritten(&self) -> bool {
        self.writer.has_unwritten()
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
            self.reader.clear();
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
        let Outbox {
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
            if !self.writer.queue_pong() {
                break;
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
                    put_header(out, false, opcode::TEXT, text.len());
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
    use crate::transport::frame::tests::client_frame;

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
}
