//! The Engine.IO v4 side of the client, over WebSocket: the handshake (the open packet), the
//! heartbeat (answering pings, closing when the server has been silent for `pingInterval +
//! pingTimeout`), and the messages, text and binary, both ways.

use std::time::Duration;

use belfry_core::proto::{Packet, Str};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::DisconnectReason;

/// What the server's open packet says.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Handshake {
    /// The session id.
    #[allow(dead_code)]
    pub(crate) sid: String,
    pub(crate) ping_interval: u64,
    pub(crate) ping_timeout: u64,
}

/// What the engine hands the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text message (a Socket.IO packet).
    Text(Str),
    /// A binary message (an attachment).
    Binary(Bytes),
    /// The connection is gone.
    Closed(DisconnectReason),
}

/// What the client hands the engine.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A text frame, an engine packet already (`4…`).
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// Close the connection.
    Close,
}

/// An open Engine.IO connection: its messages, and where to write.
pub(crate) struct Engine {
    pub(crate) incoming: mpsc::Receiver<Incoming>,
    pub(crate) outgoing: mpsc::UnboundedSender<Outgoing>,
}

/// Why the engine could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("websocket error")]
    WebSocket(#[from] tungstenite::Error),
    #[error("the server did not open the session in time")]
    Timeout,
    #[error("the server's open packet is invalid")]
    Handshake,
}

/// Connects to the WebSocket URL `url` with `headers`, within `timeout`, and reads the open
/// packet; a task then runs the connection until either side closes it.
pub(crate) async fn open(
    url: &str,
    headers: &http::HeaderMap,
    timeout: Duration,
) -> Result<Engine, OpenError> {
    let opening = async {
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    let Some(json) = text.strip_prefix('0') else {
                        return Err(OpenError::Handshake);
                    };
                    let handshake: Handshake =
                        serde_json::from_str(json).map_err(|_| OpenError::Handshake)?;
                    return Ok((ws, handshake));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) | None => return Err(OpenError::Handshake),
                Some(Err(error)) => return Err(error.into()),
            }
        }
    };
    let (ws, handshake) = tokio::time::timeout(timeout, opening)
        .await
        .map_err(|_| OpenError::Timeout)??;
    let (incoming_tx, incoming) = mpsc::channel(256);
    let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(ws, handshake, incoming_tx, outgoing_rx));
    Ok(Engine { incoming, outgoing })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the connection: reads (answering pings), writes, and watches the heartbeat.
async fn run(
    mut ws: Ws,
    handshake: Handshake,
    incoming: mpsc::Sender<Incoming>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    let silence = Duration::from_millis(handshake.ping_interval + handshake.ping_timeout);
    let mut deadline = Instant::now() + silence;
    let reason = loop {
        tokio::select! {
            frame = ws.next() => {
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        deadline = Instant::now() + silence;
                        let text = Str::from(text.as_str());
                        match Packet::decode_text(text) {
                            Ok(Packet::Ping) => {
                                if ws.send(Message::text("3")).await.is_err() {
                                    break DisconnectReason::TransportError;
                                }
                            }
                            Ok(Packet::Message(text)) => {
                                if incoming.send(Incoming::Text(text)).await.is_err() {
                                    break DisconnectReason::ForcedClose;
                                }
                            }
                            Ok(Packet::Close) => break DisconnectReason::TransportClose,
                            Ok(_) => {}
                            Err(_) => break DisconnectReason::ParseError,
                        }
                    }
                    Some(Ok(Message::Binary(data))) => {
                        deadline = Instant::now() + silence;
                        if incoming.send(Incoming::Binary(data)).await.is_err() {
                            break DisconnectReason::ForcedClose;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break DisconnectReason::TransportClose,
                    Some(Ok(_)) => {}
                    Some(Err(_)) => break DisconnectReason::TransportError,
                }
            }
            out = outgoing.recv() => {
                let sent = match out {
                    Some(Outgoing::Text(text)) => ws.send(Message::text(text)).await,
                    Some(Outgoing::Binary(data)) => ws.send(Message::Binary(data)).await,
                    Some(Outgoing::Close) | None => {
                        // The client closes: the engine's close packet, then the WebSocket.
                        let _ = ws.send(Message::text("1")).await;
                        let _ = ws.close(None).await;
                        break DisconnectReason::ForcedClose;
                    }
                };
                if sent.is_err() {
                    break DisconnectReason::TransportError;
                }
            }
            () = tokio::time::sleep_until(deadline) => break DisconnectReason::PingTimeout,
        }
    };
    let _ = incoming.send(Incoming::Closed(reason)).await;
}
