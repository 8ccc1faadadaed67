//! The byte stream under an upgraded WebSocket connection.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::TcpStream,
};

/// An upgraded connection: the TCP stream itself when hyper served it as one (its own HTTP/1
/// connection builder over `TokioIo<TcpStream>`), else hyper's type-erased [`Upgraded`].
///
/// The stream itself spares every read and write hyper's boxed stream and the wrappers around
/// it (what it saves: `docs/PERFORMANCE.md`, "Serving Belfry for speed"). `axum::serve` wraps
/// its streams in a private type of hyper-util's, which only the second form can hold.
pub(crate) enum UpgradedIo {
    /// The stream, after the bytes that hyper read past the request (`early`).
    Tcp { stream: TcpStream, early: Bytes },
    /// Any other stream, through hyper.
    Other(TokioIo<Upgraded>),
}

impl UpgradedIo {
    pub(crate) fn new(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => UpgradedIo::Tcp {
                stream: parts.io.into_inner(),
                early: kept(parts.read_buf),
            },
            Err(upgraded) => UpgradedIo::Other(TokioIo::new(upgraded)),
        }
    }
}

/// `early` if bytes are left in it, else nothing: an empty slice of hyper's read buffer would
/// keep the whole buffer (8 KiB or more) for the life of the connection.
fn kept(early: Bytes) -> Bytes {
    if early.is_empty() {
        Bytes::new()
    } else {
        early
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp { stream, early } => {
                if early.is_empty() {
                    return Pin::new(stream).poll_read(cx, buf);
                }
                let n = early.len().min(buf.remaining());
                buf.put_slice(&early[..n]);
                early.advance(n);
                *early = kept(std::mem::take(early));
                Poll::Ready(Ok(()))
            }
            UpgradedIo::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpgradedIo::Tcp { stream, .. } => Pin::new(stream).poll_write(cx, buf),
            UpgradedIo::Other(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpgradedIo::Tcp { stream, .. } => poll_sendmsg(stream, cx, bufs),
            UpgradedIo::Other(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpgradedIo::Tcp { stream, .. } => stream.is_write_vectored(),
            UpgradedIo::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp { stream, .. } => Pin::new(stream).poll_flush(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedIo::Tcp { stream, .. } => Pin::new(stream).poll_shutdown(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A vectored write with `sendmsg` rather than tokio's `writev`: on a socket the same, but
/// `writev` also goes through the file layer (the file position's lookup, the write checks and
/// notifications that a socket does not need), a cost paid on every frame written with its
/// payload apart. (A single buffer already goes out with `send`: the standard library's.)
/// `MSG_NOSIGNAL` as for `send`: a peer gone resets the connection with an error, never a
/// `SIGPIPE` to a process that did not ignore it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn poll_sendmsg(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        std::task::ready!(stream.poll_write_ready(cx))?;
        // `try_io` clears the readiness when the send would block; the next turn waits for it.
        let sent = stream.try_io(Interest::WRITABLE, || {
            socket2::SockRef::from(stream).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        });
        match sent {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
    }
}

/// Elsewhere, tokio's vectored write.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn poll_sendmsg(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    Pin::new(stream).poll_write_vectored(cx, bufs)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn an_empty_rest_of_the_read_buffer_is_not_kept() {
        let mut read = BytesMut::from(&[1u8; 8192][..]);
        read.clear();
        let rest = read.freeze();
        let other = rest.clone();
        let held = kept(rest);
        assert!(held.is_empty());
        assert!(
            other.is_unique(),
            "the 8 KiB buffer is referenced by `other` alone"
        );

        let rest = Bytes::from(vec![7u8; 10]).slice(4..);
        assert_eq!(&kept(rest)[..], &[7u8; 6][..]);
    }
}
