//! The bytes a client has read from its connection and not parsed yet.

use std::io;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A read buffer: `buf[start..]` is unread. Parsers keep offsets from `start`, which `fill`
/// keeps valid (it moves the unread bytes to the front, in order).
#[derive(Debug)]
pub(crate) struct ReadBuf {
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
}

impl ReadBuf {
    pub(crate) fn new() -> Self {
        ReadBuf {
            buf: Vec::with_capacity(1024),
            start: 0,
        }
    }

    /// Reads more bytes from `tcp`, making room first; the end of the stream is an error.
    pub(crate) async fn fill(&mut self, tcp: &mut TcpStream) -> io::Result<()> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.capacity() - self.buf.len() < 512 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(self.buf.capacity().max(1024));
        }
        if tcp.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
