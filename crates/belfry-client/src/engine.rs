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

/// The largest message the client takes.
const MAX_MESSAGE: usize = 16 << 20;
/// The longest silence a server may ask for (its `pingInterval + pingTimeout`).
const MAX_SILENCE: Duration = Duration::from_secs(3600);
/// How long closing may take once the client closes.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

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
    #[error("websocket error: {0}")]
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
        // Messages up to 16 MiB (socket.io-client's servers default to 1 MB); small writes (acks,
        // pongs, attachments after their packet) go out at once, as Node's `ws` does.
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
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
    // Saturated and capped: the numbers are the server's.
    let silence = Duration::from_millis(
        handshake
            .ping_interval
            .saturating_add(handshake.ping_timeout),
    )
    .min(MAX_SILENCE);
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
                                if let Err(reason) = write(&mut ws, Message::text("3"), deadline).await {
                                    break reason;
                                }
                            }
                            Ok(Packet::Message(text)) => {
                                if incoming.send(Incoming::Text(text)).await.is_err() {
                                    break DisconnectReason::ForcedClose;
                                }
                            }
                            Ok(Packet::Close) => break DisconnectReason::TransportClose,
                            Ok(_) => {}
                            // An engine packet that cannot be decoded: engine.io-client's
                            // "transport error".
                            Err(_) => break DisconnectReason::TransportError,
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
                    // The server gone without a close frame is a closed transport too.
                    Some(Err(tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ))) => break DisconnectReason::TransportClose,
                    Some(Err(_)) => break DisconnectReason::TransportError,
                }
            }
            out = outgoing.recv() => {
                let message = match out {
                    Some(Outgoing::Text(text)) => Message::text(text),
                    Some(Outgoing::Binary(data)) => Message::Binary(data),
                    Some(Outgoing::Close) | None => {
                        // The client closes: the engine's close packet, then the WebSocket,
                        // briefly (a server that does not read is not waited for).
                        let closing = async {
                            let _ = ws.send(Message::text("1")).await;
                            let _ = ws.close(None).await;
                        };
                        let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
                        break DisconnectReason::ForcedClose;
                    }
                };
                if let Err(reason) = write(&mut ws, message, deadline).await {
                    break reason;
                }
            }
            () = tokio::time::sleep_until(deadline) => break DisconnectReason::PingTimeout,
        }
    };
    let _ = incoming.send(Incoming::Closed(reason)).await;
}

/// Writes `message`; a server that does not take it before `deadline` (the heartbeat's) has
/// gone silent.
async fn write(ws: &mut Ws, message: Message, deadline: Instant) -> Result<(), DisconnectReason> {
    match tokio::time::timeout_at(deadline, ws.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(DisconnectReason::TransportError),
        Err(_) => Err(DisconnectReason::PingTimeout),
    }
}
