//! The servers' side of Belfry's benchmarks: the handlers every benchmark server has (the
//! contract in this crate's README, "The servers' contract"), as Belfry's benchmark server
//! (`examples/bench-server`) and the load generator's tests serve them.
//!
//! The load generator itself is this crate's binary, `belfry-bench` (see the README).

use belfry::{
    AckSender, SocketRef,
    extract::{Args, Data},
};
use serde_json::Value;

/// A socket of the main namespace: `echo` (the same arguments back as `echo`), `ack` (acked with
/// the same arguments), `join` (joins the room named, then acks with nothing), `bcast` (`msg`
/// with the payload to the room but the sender, then acks with nothing).
pub async fn on_connect(socket: SocketRef) {
    // echo: the same arguments back to the sender.
    socket.on("echo", |socket: SocketRef, args: Args| async move {
        let _ = socket.emit("echo", &args);
    });
    // ack: acknowledge with the same arguments.
    socket.on("ack", |args: Args, ack: AckSender| async move {
        let _ = ack.send(&args);
    });
    // join: join the room, then ack with no arguments.
    socket.on(
        "join",
        |socket: SocketRef, Data(room): Data<String>, ack: AckSender| async move {
            socket.join(room);
            let _ = ack.send(&());
        },
    );
    // bcast: `msg` to the room but the sender, then ack once queued for every recipient.
    socket.on(
        "bcast",
        |socket: SocketRef, Data((room, payload)): Data<(String, Value)>, ack: AckSender| async move {
            let _ = socket.to(room).emit("msg", &payload);
            let _ = ack.send(&());
        },
    );
}
