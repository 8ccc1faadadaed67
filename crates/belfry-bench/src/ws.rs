//! The client side of Engine.IO v4 and Socket.IO v5 over a WebSocket, as little of it as the
//! scenarios need and as cheap as it can be, so that one core of load generator can keep
//! thousands of sockets busy: the upgrade written by hand, text frames only, masked with a zero
//! key (a valid mask: the server unmasks with it), no extensions.
//!
//! Engine.IO pings are answered inside [`Ws::recv`]; callers see Socket.IO packets only.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::read_buf::ReadBuf;

/// Messages larger than this end the connection (the scenarios send at most a few KiB).
const MAX_MESSAGE: usize = 1 << 20;

/// Engine.IO pings read (and so answered: the pong goes before the next read or send) by every
/// connection of the process.
static PINGS: AtomicU64 = AtomicU64::new(0);

/// Engine.IO pings the WebSocket clients of this process have answered so far.
pub(crate) fn pings_answered() -> u64 {
    PINGS.load(Ordering::Relaxed)
}

/// One Socket.IO connection to the main namespace, over a WebSocket.
#[derive(Debug)]
pub(crate) struct Ws {
    tcp: TcpStream,
    read: ReadBuf,
    /// A ping was read and its pong is not written yet (written before the next read or send).
    pong_due: bool,
    frame: Vec<u8>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Ws {
    /// Connects to `addr`, opens the Engine.IO session over a WebSocket and joins the main
    /// namespace.
    pub(crate) async fn connect(addr: &str) -> io::Result<Ws> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let request = format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut ws = Ws {
            tcp,
            read: ReadBuf::new(),
            pong_due: false,
            frame: Vec::with_capacity(64),
        };
        // The response's head; what follows it (the open packet, maybe) stays in the buffer.
        let head_end = loop {
            if let Some(at) = ws.read.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if ws.read.buf.len() > 8192 {
                return Err(invalid("upgrade response head too long"));
            }
            ws.read.fill(&mut ws.tcp).await?;
        };
        if !ws.read.buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&ws.read.buf[..head_end]).into_owned();
            return Err(invalid(format!("upgrade refused: {head}")));
        }
        ws.read.start = head_end;
        let open = ws.recv_engine().await?;
        if open.first() != Some(&b'0') {
            return Err(invalid("no Engine.IO open packet"));
        }
        ws.send("0").await?;
        loop {
            // Socket.IO packets: `0` CONNECT, `4` CONNECT_ERROR.
            let packet = ws.recv().await?;
            if packet.starts_with(b"0") {
                return Ok(ws);
            }
            if packet.starts_with(b"4") {
                return Err(invalid("namespace refused"));
            }
        }
    }

    /// The next whole text message (an Engine.IO packet), pings answered.
    async fn recv_engine(&mut self) -> io::Result<&[u8]> {
        let (from, to) = self.recv_span().await?;
        Ok(&self.read.buf[from..to])
    }

    /// Where the next whole text message is in `buf`.
    async fn recv_span(&mut self) -> io::Result<(usize, usize)> {
        loop {
            // A pong due is written before waiting for more bytes (it is written at the next
            // send or receive when a message comes with its ping).
            if let Some(span) = self.next_frame()? {
                return Ok(span);
            }
            if self.pong_due {
                self.pong_due = false;
                self.write_frame(b"3").await?;
            }
            self.read.fill(&mut self.tcp).await?;
        }
    }

    /// Parses one frame at the start of the unread bytes: `Some((from, to))` for a text message
    /// (its payload's place in `buf`), `None` when more bytes are needed. Control frames are
    /// dealt with here.
    fn next_frame(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            let unread = &self.read.buf[self.read.start..];
            if unread.len() < 2 {
                return Ok(None);
            }
            let (fin, opcode) = (unread[0] & 0x80 != 0, unread[0] & 0x0f);
            if unread[1] & 0x80 != 0 {
                return Err(invalid("masked frame from the server"));
            }
            let (len, header) = match unread[1] & 0x7f {
                126 if unread.len() >= 4 => {
                    (usize::from(u16::from_be_bytes([unread[2], unread[3]])), 4)
                }
                127 if unread.len() >= 10 => {
                    let mut bytes = [0; 8];
                    bytes.copy_from_slice(&unread[2..10]);
                    let len = usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX);
                    (len, 10)
                }
                126 | 127 => return Ok(None),
                len => (usize::from(len), 2),
            };
            if len > MAX_MESSAGE {
                return Err(invalid("message too large"));
            }
            if unread.len() < header + len {
                return Ok(None);
            }
            let from = self.read.start + header;
            self.read.start = from + len;
            match opcode {
                1 if fin => {
                    if &self.read.buf[from..from + len] == b"2" {
                        PINGS.fetch_add(1, Ordering::Relaxed);
                        self.pong_due = true;
                        continue;
                    }
                    if self.read.buf.get(from) == Some(&b'1') {
                        return Err(invalid("the server closed the session"));
                    }
                    return Ok(Some((from, from + len)));
                }
                8 => return Err(io::ErrorKind::ConnectionReset.into()),
                // WebSocket pings and pongs: no server of the comparison sends any.
                9 | 10 => continue,
                _ => {
                    return Err(invalid(format!(
                        "unexpected frame (opcode {opcode}, fin {fin})"
                    )));
                }
            }
        }
    }

    /// The next Socket.IO packet (Engine.IO message packets only, without their `4`).
    pub(crate) async fn recv(&mut self) -> io::Result<&[u8]> {
        loop {
            let (from, to) = self.recv_span().await?;
            if self.read.buf.get(from) == Some(&b'4') {
                return Ok(&self.read.buf[from + 1..to]);
            }
        }
    }

    /// Sends a Socket.IO packet as an Engine.IO message (`4` put in front).
    pub(crate) async fn send(&mut self, packet: &str) -> io::Result<()> {
        let mut message = Vec::with_capacity(packet.len() + 1);
        message.push(b'4');
        message.extend_from_slice(packet.as_bytes());
        self.write_frame(&message).await
    }

    /// Writes one masked text frame.
    async fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame.clear();
        self.frame.push(0x81);
        match payload.len() {
            len @ 0..=125 => self.frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                self.frame.push(0x80 | 126);
                self.frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                self.frame.push(0x80 | 127);
                self.frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        // The masking key: zeros, so the payload goes as it is.
        self.frame.extend_from_slice(&[0; 4]);
        self.frame.extend_from_slice(payload);
        if self.pong_due {
            self.pong_due = false;
            self.tcp.write_all(&[0x81, 0x81, 0, 0, 0, 0, b'3']).await?;
        }
        self.tcp.write_all(&self.frame).await
    }
}
