//! A raw WebSocket client, for frames no WebSocket library would send.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{RawResponse, read_response, upgrade_request};

/// A WebSocket client over a raw TCP stream that writes frames byte by byte, for malformed
/// input that no WebSocket library would send.
#[derive(Debug)]
pub struct RawWs {
    /// The TCP stream, after the handshake.
    pub stream: TcpStream,
    /// Bytes read past the handshake response, not yet consumed.
    buffered: Vec<u8>,
}

impl RawWs {
    /// Connects and completes the upgrade handshake for `query` on the engine path.
    pub async fn connect(addr: SocketAddr, query: &str) -> RawWs {
        RawWs::connect_with(addr, query, "").await.0
    }

    /// [`RawWs::connect`] with more request header lines (each ending in `\r\n`); also
    /// returns the 101 response.
    pub async fn connect_with(
        addr: SocketAddr,
        query: &str,
        headers: &str,
    ) -> (RawWs, RawResponse) {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawWs::handshake_on(stream, addr, query, headers).await
    }

    /// [`RawWs::connect_with`] over a stream connected already (with socket options of the
    /// test's choosing).
    pub async fn handshake_on(
        mut stream: TcpStream,
        addr: SocketAddr,
        query: &str,
        headers: &str,
    ) -> (RawWs, RawResponse) {
        // Small frames written back to back must not wait for the peer's delayed ACK.
        stream.set_nodelay(true).unwrap();
        let request = upgrade_request(addr, query);
        let head = request.strip_suffix("\r\n").unwrap_or(&request);
        let request = format!("{head}{headers}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut res = read_response(&mut stream).await;
        assert_eq!(res.status, 101, "{res:?}");
        let buffered = std::mem::take(&mut res.body);
        (RawWs { stream, buffered }, res)
    }

    /// Connects a new session over WebSocket and reads its open packet; returns the session id.
    pub async fn open(addr: SocketAddr) -> (RawWs, String) {
        let mut ws = RawWs::connect(addr, "EIO=4&transport=websocket").await;
        let (opcode, payload) = ws.read_frame().await.expect("the open packet");
        assert_eq!(opcode, 1);
        let text = String::from_utf8(payload).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text[1..]).unwrap();
        (ws, json["sid"].as_str().unwrap().to_owned())
    }

    /// Writes one masked frame: `first` is the first header byte (FIN, RSV bits, opcode).
    pub async fn frame(&mut self, first: u8, payload: &[u8]) {
        let bytes = encode_frame(first, payload, true);
        let _ = self.stream.write_all(&bytes).await;
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads one frame: `(opcode, payload)`, or `None` once the connection is closed.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        self.read_frame_with_flags()
            .await
            .map(|(first, payload)| (first & 0x0f, payload))
    }

    /// Reads one frame: `(first header byte: FIN, RSV bits and opcode, payload)`.
    pub async fn read_frame_with_flags(&mut self) -> Option<(u8, Vec<u8>)> {
        tokio::time::timeout(Duration::from_secs(10), async {
            let head = self.read_exact(2).await?;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let ext = self.read_exact(2).await?;
                len = u64::from(u16::from_be_bytes([ext[0], ext[1]]));
            } else if len == 127 {
                let ext = self.read_exact(8).await?;
                len = u64::from_be_bytes(ext.try_into().ok()?);
            }
            let payload = self.read_exact(usize::try_from(len).ok()?).await?;
            Some((head[0], payload))
        })
        .await
        .expect("a frame or a close within 10 s")
    }

    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut chunk = [0u8; 4096];
        while self.buffered.len() < n {
            let read = self.stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            self.buffered.extend_from_slice(&chunk[..read]);
        }
        let rest = self.buffered.split_off(n);
        Some(std::mem::replace(&mut self.buffered, rest))
    }

    /// True if a byte can be read at once, without waiting: one read past already, or one in
    /// the kernel's receive buffer (asked of the kernel itself, through a duplicate of the
    /// socket, not of tokio's readiness).
    pub fn has_unread_bytes(&self) -> bool {
        use std::os::fd::AsFd;
        if !self.buffered.is_empty() {
            return true;
        }
        let fd = self.stream.as_fd().try_clone_to_owned().unwrap();
        let stream = std::net::TcpStream::from(fd);
        // A duplicate shares the file's flags: non-blocking, as tokio set it.
        match stream.peek(&mut [0u8; 1]) {
            Ok(n) => n > 0,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(error) => panic!("peek: {error}"),
        }
    }

    /// Reads frames until a close frame and returns its code (`None` for a close without one);
    /// panics if the connection ends without a close frame.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.read_frame().await {
                Some((8, payload)) => {
                    return (payload.len() >= 2)
                        .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                }
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

/// Encodes a frame with a fixed masking key.
pub fn encode_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | u8::try_from(len).unwrap());
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
