//! The client side of Engine.IO v4 long-polling over plain HTTP/1.1 keep-alive connections,
//! written by hand for the same reason as [`crate::ws`]: requests are a `write`, responses are
//! read with their `Content-Length` (or chunked), nothing else of HTTP is needed.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::read_buf::ReadBuf;

/// Responses larger than this end the connection.
const MAX_BODY: usize = 1 << 20;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One keep-alive HTTP/1.1 connection to the server.
#[derive(Debug)]
pub(crate) struct Http {
    tcp: TcpStream,
    host: String,
    read: ReadBuf,
    body: Vec<u8>,
    request: Vec<u8>,
}

impl Http {
    pub(crate) async fn connect(addr: &str) -> io::Result<Http> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(Http {
            tcp,
            host: addr.to_owned(),
            read: ReadBuf::new(),
            body: Vec::new(),
            request: Vec::with_capacity(256),
        })
    }

    /// Writes a GET of the session's (or, without `sid`, a new session's) polling URL.
    pub(crate) async fn send_get(&mut self, sid: Option<&str>) -> io::Result<()> {
        self.request.clear();
        self.request
            .extend_from_slice(b"GET /socket.io/?EIO=4&transport=polling");
        if let Some(sid) = sid {
            self.request.extend_from_slice(b"&sid=");
            self.request.extend_from_slice(sid.as_bytes());
        }
        self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.tcp.write_all(&self.request).await
    }

    /// Writes a POST of `payload` to the session.
    pub(crate) async fn send_post(&mut self, sid: &str, payload: &[u8]) -> io::Result<()> {
        self.request.clear();
        self.request
            .extend_from_slice(b"POST /socket.io/?EIO=4&transport=polling&sid=");
        self.request.extend_from_slice(sid.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        self.request
            .extend_from_slice(b"\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: ");
        self.request
            .extend_from_slice(payload.len().to_string().as_bytes());
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(payload);
        self.tcp.write_all(&self.request).await
    }

    /// POSTs `payload` and reads the answer, which must be `ok`.
    pub(crate) async fn post(&mut self, sid: &str, payload: &[u8]) -> io::Result<()> {
        self.send_post(sid, payload).await?;
        if self.response().await? != b"ok" {
            return Err(invalid("POST not answered ok"));
        }
        Ok(())
    }

    /// Reads one response; its body, which must come with status 200.
    pub(crate) async fn response(&mut self) -> io::Result<&[u8]> {
        let head_end = loop {
            if let Some(at) = self.read.buf[self.read.start..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                break self.read.start + at + 4;
            }
            if self.read.buf.len() - self.read.start > 16 * 1024 {
                return Err(invalid("response head too long"));
            }
            self.read.fill(&mut self.tcp).await?;
        };
        let head = std::str::from_utf8(&self.read.buf[self.read.start..head_end])
            .map_err(|_| invalid("response head not UTF-8"))?;
        if !head.starts_with("HTTP/1.1 200") {
            let line = head.lines().next().unwrap_or_default().to_owned();
            return Err(invalid(format!("response: {line}")));
        }
        let mut length = None;
        let mut chunked = false;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| invalid("bad length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        self.read.start = head_end;
        self.body.clear();
        if chunked {
            loop {
                // Offsets from `start`: `fill` moves the unread bytes, not their order.
                let line = loop {
                    if let Some(at) = self.read.buf[self.read.start..]
                        .windows(2)
                        .position(|w| w == b"\r\n")
                    {
                        break at;
                    }
                    self.read.fill(&mut self.tcp).await?;
                };
                let size =
                    std::str::from_utf8(&self.read.buf[self.read.start..self.read.start + line])
                        .ok()
                        .and_then(|line| {
                            usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()
                        })
                        .ok_or_else(|| invalid("bad chunk size"))?;
                if self.body.len() + size > MAX_BODY {
                    return Err(invalid("response too large"));
                }
                while self.read.buf.len() - self.read.start < line + 2 + size + 2 {
                    self.read.fill(&mut self.tcp).await?;
                }
                let from = self.read.start + line + 2;
                self.body
                    .extend_from_slice(&self.read.buf[from..from + size]);
                self.read.start = from + size + 2;
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.ok_or_else(|| invalid("response without a length"))?;
            if length > MAX_BODY {
                return Err(invalid("response too large"));
            }
            while self.read.buf.len() - self.read.start < length {
                self.read.fill(&mut self.tcp).await?;
            }
            self.body
                .extend_from_slice(&self.read.buf[self.read.start..self.read.start + length]);
            self.read.start += length;
        }
        Ok(&self.body)
    }
}
