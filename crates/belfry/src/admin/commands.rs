//! The UI's commands (emit, join, leave, disconnect), run on the sockets they address.

use serde_json::Value;

use super::Admin;
use crate::{SocketRef, Spread, extract::Data, io::WeakSocketIo};

impl Admin {
    /// The UI's commands: `emit(nsp, filter, event, ...args)`, `join(nsp, room, filter)`,
    /// `leave(nsp, room, filter)`, `_disconnect(nsp, close, filter)`; a filter is a room (often
    /// a socket id) or empty for the whole namespace.
    pub(super) fn register_commands(&self, socket: &SocketRef) {
        let io = self.io.clone();
        socket.on("emit", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(event)) = (target(&io, &args, 1), args.get(2)) {
                    let event = event.as_str().unwrap_or_default();
                    let rest = args.get(3..).unwrap_or_default();
                    let _ = operator.emit(event, &Spread(rest));
                }
            }
        });
        let io = self.io.clone();
        socket.on("join", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(room)) = (target(&io, &args, 2), args.get(1)) {
                    let room = room.as_str().unwrap_or_default().to_owned();
                    let _ = operator.sockets_join(room).await;
                }
            }
        });
        let io = self.io.clone();
        socket.on("leave", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let (Some(operator), Some(room)) = (target(&io, &args, 2), args.get(1)) {
                    let room = room.as_str().unwrap_or_default().to_owned();
                    let _ = operator.sockets_leave(&room).await;
                }
            }
        });
        let io = self.io.clone();
        socket.on("_disconnect", move |Data(args): Data<Vec<Value>>| {
            let io = io.clone();
            async move {
                if let Some(operator) = target(&io, &args, 2) {
                    let close = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                    let _ = operator.disconnect_sockets(close).await;
                }
            }
        });
    }
}

/// The operator a command addresses: namespace `args[0]`, within the room `args[filter]` if
/// one is given.
fn target(io: &WeakSocketIo, args: &[Value], filter: usize) -> Option<crate::BroadcastOperator> {
    let operator = io.upgrade()?.of(args.first()?.as_str()?)?;
    Some(match args.get(filter).and_then(Value::as_str) {
        Some(room) if !room.is_empty() => operator.within(room),
        _ => operator,
    })
}
