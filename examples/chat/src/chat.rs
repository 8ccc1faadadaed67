//! The chat's Socket.IO side: nicknames, rooms, messages with delivery acks, "is typing",
//! member lists and images sent as binary.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use belfry::{
    AckSender, ConnectError, SocketIo, SocketRef,
    extract::{Data, State, TryData},
};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The rooms every visitor sees; others can be created by name.
pub(crate) const ROOMS: [&str; 3] = ["general", "rust", "random"];
/// Messages kept per room for newcomers.
const HISTORY: usize = 50;
/// Longest nickname, in characters.
const MAX_NICK: usize = 24;
/// Longest room name, in characters.
const MAX_ROOM: usize = 32;
/// Longest message, in characters.
const MAX_TEXT: usize = 2000;
/// Largest image, in bytes (under the engine's 1 MB message limit).
pub(crate) const MAX_IMAGE: usize = 512 * 1024;

/// The nickname a socket connected with, kept in its extensions.
#[derive(Debug, Clone)]
struct Nick(String);

/// What the server remembers: recent messages of each room.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    history: Arc<Mutex<HashMap<String, VecDeque<Message>>>>,
    next_id: Arc<AtomicU64>,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat {
            history: Arc::default(),
            // Ids keep growing across restarts, so a page that reconnects to a new server
            // never mistakes a new message for one it already shows.
            next_id: Arc::new(AtomicU64::new(now_ms().saturating_mul(1000))),
        }
    }
}

/// A chat message as the page shows it.
#[derive(Debug, Clone, Serialize)]
struct Message {
    id: u64,
    room: String,
    from: String,
    text: String,
    at: u64,
}

/// An image's description; its bytes travel as a binary attachment beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Image {
    room: String,
    name: String,
    mime: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    at: u64,
}

#[derive(Debug, Deserialize)]
struct Auth {
    nick: String,
}

#[derive(Debug, Deserialize)]
struct Outgoing {
    room: String,
    text: String,
}

impl Chat {
    fn remember(&self, message: Message) {
        let mut history = self.history.lock();
        let room = history.entry(message.room.clone()).or_default();
        if room.len() == HISTORY {
            room.pop_front();
        }
        room.push_back(message);
    }

    fn history(&self, room: &str) -> Vec<Message> {
        self.history
            .lock()
            .get(room)
            .map(|messages| messages.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Registers the chat on the main namespace.
pub(crate) fn register(io: &SocketIo) {
    io.ns("/", on_connect).middleware(check_nick);
}

/// Refuses a connect without a usable nickname; the page shows the message.
async fn check_nick(socket: SocketRef, auth: TryData<Auth>) -> Result<(), ConnectError> {
    let nick = auth
        .0
        .ok()
        .map(|auth| auth.nick.trim().to_owned())
        .filter(|nick| !nick.is_empty() && nick.chars().count() <= MAX_NICK)
        .ok_or_else(|| {
            ConnectError::new(format!("pick a nickname of 1 to {MAX_NICK} characters"))
        })?;
    socket.insert_extension(Nick(nick));
    Ok(())
}

async fn on_connect(socket: SocketRef) {
    tracing::info!(id = %socket.id(), nick = %nick(&socket), "joined the chat");
    // A slice is one argument (a fixed-size array would spread into three).
    let _ = socket.emit("rooms", &ROOMS[..]);
    socket.on("join", join);
    socket.on("leave", leave);
    socket.on("message", message);
    socket.on("typing", typing);
    socket.on("image", image);
    socket.on_disconnecting(|socket: SocketRef| async move {
        for room in chat_rooms(&socket) {
            announce_members(&socket, &room);
        }
    });
}

fn nick(socket: &SocketRef) -> String {
    socket
        .extension::<Nick>()
        .map_or_else(|| "?".to_owned(), |nick| nick.0)
}

/// The chat rooms a socket is in (not the room named after its own id).
fn chat_rooms(socket: &SocketRef) -> Vec<String> {
    let own = socket.id().to_string();
    socket
        .rooms()
        .into_iter()
        .filter(|room| *room != own)
        .collect()
}

fn valid_room(room: &str) -> bool {
    let len = room.chars().count();
    (1..=MAX_ROOM).contains(&len) && !room.chars().any(char::is_control)
}

/// Sends the member list of `room` to everyone in it, leaving out a socket on its way out.
fn announce_members(socket: &SocketRef, room: &str) {
    let leaving = (!socket.connected()).then(|| socket.id().clone());
    let mut users: Vec<String> = socket
        .io()
        .to(room)
        .sockets()
        .iter()
        .filter(|member| Some(member.id()) != leaving.as_ref())
        .map(nick)
        .collect();
    users.sort();
    let _ = socket.io().to(room).emit(
        "users",
        &serde_json::json!({ "room": room, "users": users }),
    );
}

async fn join(
    socket: SocketRef,
    State(chat): State<Chat>,
    Data(room): Data<String>,
    ack: AckSender,
) {
    if !valid_room(&room) {
        let _ = ack.send(&serde_json::json!({ "error": "invalid room name" }));
        return;
    }
    socket.join(room.clone());
    let history = chat.history(&room);
    let _ = ack.send(&serde_json::json!({ "room": room, "history": history }));
    announce_members(&socket, &room);
}

async fn leave(socket: SocketRef, Data(room): Data<String>) {
    socket.leave(&room);
    announce_members(&socket, &room);
}

async fn message(
    socket: SocketRef,
    State(chat): State<Chat>,
    Data(out): Data<Outgoing>,
    ack: AckSender,
) {
    if !socket.rooms().contains(&out.room) {
        let _ = ack.send(&serde_json::json!({ "error": "join the room first" }));
        return;
    }
    let text: String = out.text.trim().chars().take(MAX_TEXT).collect();
    if text.is_empty() {
        let _ = ack.send(&serde_json::json!({ "error": "empty message" }));
        return;
    }
    let message = Message {
        id: chat.next_id.fetch_add(1, Ordering::Relaxed),
        room: out.room,
        from: nick(&socket),
        text,
        at: now_ms(),
    };
    let _ = socket.to(message.room.clone()).emit("message", &message);
    // The delivery tick: the server has it and passed it on.
    let _ = ack.send(&serde_json::json!({ "id": message.id, "at": message.at }));
    chat.remember(message);
}

async fn typing(socket: SocketRef, Data(room): Data<String>) {
    if socket.rooms().contains(&room) {
        let from = nick(&socket);
        // Volatile: a client that cannot take it right now does not need it later.
        let _ = socket
            .to(room.clone())
            .volatile()
            .emit("typing", &serde_json::json!({ "room": room, "from": from }));
    }
}

async fn image(socket: SocketRef, Data((mut image, bytes)): Data<(Image, Bytes)>, ack: AckSender) {
    let refusal = if !socket.rooms().contains(&image.room) {
        Some("join the room first")
    } else if bytes.len() > MAX_IMAGE {
        Some("image too large (512 KiB at most)")
    } else if !image.mime.starts_with("image/") {
        Some("not an image")
    } else {
        None
    };
    if let Some(error) = refusal {
        let _ = ack.send(&serde_json::json!({ "error": error }));
        return;
    }
    image.from = Some(nick(&socket));
    image.at = now_ms();
    // The bytes go out as a binary attachment, encoded once for the whole room.
    let _ = socket
        .to(image.room.clone())
        .emit("image", &(&image, bytes));
    let _ = ack.send(&serde_json::json!({ "at": image.at }));
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
