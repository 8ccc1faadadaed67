//! The Socket.IO echo server: `echo` with any arguments (binary anywhere, object keys in
//! order) comes back to its sender as an `echo` event and, if it asked, as the ack's arguments.
//! `PORT=3002 cargo run -p echo`, then point any Socket.IO client at `http://127.0.0.1:3002`.

use belfry::{AckSender, SocketIo, SocketRef, extract::Args};

#[expect(clippy::print_stdout, reason = "the test waits for the address")]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", |socket: SocketRef| async move {
        socket.on(
            "echo",
            |socket: SocketRef, args: Args, ack: AckSender| async move {
                let _ = socket.emit("echo", &args);
                let _ = ack.send(&args);
            },
        );
    });
    let port = std::env::var("PORT").map_or(Ok(3002), |port| port.parse());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(3002))).await?;
    println!("echo on http://{}", listener.local_addr()?);
    belfry::serve(listener, axum::Router::new().layer(layer)).await
}
