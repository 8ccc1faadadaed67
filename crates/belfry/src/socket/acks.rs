//! The acknowledgements a socket asks of its client: emits waiting for an answer, the waiters,
//! and the answers handed to them.

use std::time::Duration;

use belfry_core::{
    adapter::BroadcastFlags,
    parser::{Packet, Payload},
};
use belfry_engine::SharedPackets;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

use super::{Socket, data_of, deserialize_args, event_payload, send_frames_with};
use crate::{AckError, EmitError};

impl Socket {
    /// Sends `event` and waits for the client's acknowledgement, deserialized into `R` (one
    /// argument as `R`, several as a tuple) (Node's `socket.emitWithAck`). Waits at most the
    /// server's ack timeout (see
    /// [`SocketIoBuilder::ack_timeout`](crate::SocketIoBuilder::ack_timeout)); for another one,
    /// [`Socket::timeout`]`(d).emit_with_ack(..)`.
    ///
    /// # Errors
    ///
    /// [`AckError::Timeout`] without an answer in time, [`AckError::Disconnected`] if the socket
    /// left first, and the errors of [`Socket::emit`].
    pub async fn emit_with_ack<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<R, AckError> {
        self.emit_with_ack_flagged(event, data, BroadcastFlags::default())
            .await
    }

    /// Sends `event` asking for an ack as [`SocketOperator`](crate::SocketOperator) does: waits
    /// `flags.timeout` (or the server's ack timeout); `volatile` drops the event for a transport
    /// that cannot take it now, and the wait then ends in a timeout (as Node's).
    pub(crate) async fn emit_with_ack_flagged<R: DeserializeOwned, T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        flags: BroadcastFlags,
    ) -> Result<R, AckError> {
        let timeout = flags.timeout.unwrap_or_else(|| self.io.ack_timeout());
        let id = self.ns.next_ack_id();
        let payload = event_payload(self.ns.name(), Some(id), event, data, Vec::new())?;
        let rx = self.expect_ack(id);
        let dropped = flags.volatile && self.connected() && !self.conn.is_writable();
        if !dropped {
            let packet = Packet::event(self.ns.name_str(), payload, Some(id));
            match self.send_with(packet, flags.compress != Some(false)) {
                Ok(()) => {}
                Err(EmitError::Full) if flags.volatile => {}
                Err(error) => {
                    self.forget_ack(id);
                    return Err(error.into());
                }
            }
        }
        self.wait_ack(id, rx, timeout).await
    }

    /// Registers a waiter for ack `id`.
    pub(crate) fn expect_ack(&self, id: u64) -> oneshot::Receiver<Payload> {
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, tx);
        rx
    }

    /// Stops waiting for ack `id` (timed out, or never sent).
    pub(crate) fn forget_ack(&self, id: u64) {
        self.acks.lock().remove(&id);
    }

    /// Queues `frames` (the encoding of `packet`, an event asking for ack `id`) and registers
    /// the waiter of its answer; `None` when the socket cannot take them. For broadcasts,
    /// whose frames are encoded once for every recipient.
    pub(crate) fn send_expecting_ack(
        &self,
        id: u64,
        packet: &Packet,
        frames: &SharedPackets,
    ) -> Option<oneshot::Receiver<Payload>> {
        let answer = self.expect_ack(id);
        self.notify_outgoing(packet);
        if send_frames_with(&self.conn, frames, true).is_err() {
            self.forget_ack(id);
            return None;
        }
        if let Some(observer) = self.io.observer() {
            let (packets, bytes) = data_of(frames.iter());
            observer.packets_out(packets, bytes);
        }
        Some(answer)
    }

    /// Waits for ack `id` at most `timeout`, and deserializes it.
    pub(crate) async fn wait_ack<R: DeserializeOwned>(
        &self,
        id: u64,
        rx: oneshot::Receiver<Payload>,
        timeout: Duration,
    ) -> Result<R, AckError> {
        let answer = self.wait_ack_payload(id, rx, timeout).await?;
        deserialize_args(&answer).map_err(AckError::Deserialize)
    }

    /// Waits for ack `id` at most `timeout`; forgets it on a timeout.
    pub(crate) async fn wait_ack_payload(
        &self,
        id: u64,
        rx: oneshot::Receiver<Payload>,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.forget_ack(id);
                Err(AckError::Timeout)
            }
        }
    }

    /// Hands the client's answer to the emit waiting for it; unknown or repeated ids are
    /// ignored, so a callback runs at most once.
    pub(crate) fn on_ack(&self, id: u64, payload: Payload) {
        if let Some(tx) = self.acks.lock().remove(&id) {
            let _ = tx.send(payload);
        }
    }
}
