// The chat page: the official socket.io-client (loaded from /socket.io/socket.io.min.js) talking
// to Belfry. Every text from the network goes into the page through textContent, never as HTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const MAX_IMAGE = 512 * 1024;
const TYPING_EVERY_MS = 1000;
const TYPING_SHOWN_MS = 2500;

const chat = {
  socket: null,
  nick: "",
  rooms: [],            // the rooms the server offers
  joined: new Set(),    // the rooms this page is in; joined again after a reconnect
  current: null,        // the room on screen
  lastId: new Map(),    // room -> id of the newest message shown (no duplicates on rejoin)
  members: new Map(),   // room -> nicknames
  typing: new Map(),    // room -> Map(nick -> timer)
  lastTyping: 0,
};

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const nick = $("#nick").value.trim();
  if (!nick) return;
  chat.nick = nick;
  $("#login-error").textContent = "";
  connect();
});

function connect() {
  if (chat.socket) chat.socket.disconnect();
  const socket = io({ auth: { nick: chat.nick } });
  chat.socket = socket;

  socket.on("connect", () => {
    $("#banner").hidden = true;
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#me").textContent = chat.nick;
    setComposerEnabled(chat.current !== null);
    // After a reconnect the server knows nothing of this page: join its rooms again.
    const rooms = chat.joined.size ? [...chat.joined] : ["general"];
    for (const room of rooms) join(room, room === (chat.current ?? rooms[0]));
  });

  socket.on("connect_error", (error) => {
    if (socket.active) {
      // The server is away; the client retries by itself.
      $("#banner").hidden = $("#app").hidden;
    } else {
      // Refused by the server's middleware (a bad nickname): back to the form.
      $("#login").hidden = false;
      $("#app").hidden = true;
      $("#login-error").textContent = error.message;
    }
  });

  socket.on("disconnect", () => {
    $("#banner").hidden = false;
    setComposerEnabled(false);
  });

  socket.on("rooms", (rooms) => {
    chat.rooms = rooms;
    renderRooms();
  });

  socket.on("message", (message) => {
    showMessage(message, false);
    stopTyping(message.room, message.from);
  });

  socket.on("image", (image, bytes) => {
    showImage(image, bytes, false);
    stopTyping(image.room, image.from);
  });

  socket.on("users", ({ room, users }) => {
    chat.members.set(room, users);
    if (room === chat.current) renderUsers();
  });

  socket.on("typing", ({ room, from }) => startTyping(room, from));
}

async function join(room, show) {
  let answer;
  try {
    answer = await chat.socket.timeout(5000).emitWithAck("join", room);
  } catch {
    return showError(`could not join ${room}`);
  }
  if (answer.error) return showError(answer.error);
  chat.joined.add(room);
  conversation(room);
  for (const message of answer.history) showMessage(message, message.from === chat.nick);
  if (show || chat.current === null) switchTo(room);
  renderRooms();
}

function leave(room) {
  chat.socket.emit("leave", room);
  chat.joined.delete(room);
  chat.members.delete(room);
  conversation(room).remove();
  chat.lastId.delete(room);
  switchTo(chat.joined.size ? [...chat.joined][0] : null);
}

function switchTo(room) {
  chat.current = room;
  for (const list of document.querySelectorAll("ol.messages")) list.hidden = list.dataset.room !== room;
  $("#room-title").textContent = room ? `# ${room}` : "Pick a room";
  $("#users-room").textContent = room ?? "this room";
  $("#leave").disabled = room === null;
  setComposerEnabled(room !== null && chat.socket?.connected);
  renderRooms();
  renderUsers();
  renderTyping();
  if (room) scrollDown(room);
}

function renderRooms() {
  const names = [...new Set([...chat.rooms, ...chat.joined])];
  $("#rooms").replaceChildren(...names.map((room) => {
    const item = document.createElement("li");
    item.dataset.room = room;
    item.classList.toggle("joined", chat.joined.has(room));
    item.classList.toggle("current", room === chat.current);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `# ${room}`;
    button.addEventListener("click", () => (chat.joined.has(room) ? switchTo(room) : join(room, true)));
    item.append(button);
    return item;
  }));
}

function renderUsers() {
  const users = chat.members.get(chat.current) ?? [];
  $("#users").replaceChildren(...users.map((nick) => {
    const item = document.createElement("li");
    item.textContent = nick === chat.nick ? `${nick} (you)` : nick;
    return item;
  }));
}

/** The message list of `room`, made on first use. */
function conversation(room) {
  let list = document.querySelector(`ol.messages[data-room="${CSS.escape(room)}"]`);
  if (!list) {
    list = document.createElement("ol");
    list.className = "messages";
    list.dataset.room = room;
    list.hidden = room !== chat.current;
    $("#conversations").append(list);
  }
  return list;
}

function messageItem(room, from, mine) {
  const item = document.createElement("li");
  item.className = mine ? "message mine" : "message";
  item.dataset.from = from;
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = from;
  item.append(who);
  conversation(room).append(item);
  return item;
}

function showMessage(message, mine) {
  if (message.id <= (chat.lastId.get(message.room) ?? -1)) return; // already on screen
  chat.lastId.set(message.room, message.id);
  const item = messageItem(message.room, message.from, mine);
  item.dataset.id = message.id;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  item.append(text);
  if (mine) addTick(item).textContent = "✓";
  item.classList.toggle("delivered", mine);
  scrollDown(message.room);
}

function showImage(image, bytes, mine) {
  const item = messageItem(image.room, image.from ?? chat.nick, mine);
  item.classList.add("image");
  const picture = document.createElement("img");
  picture.alt = image.name;
  picture.src = URL.createObjectURL(new Blob([bytes], { type: image.mime }));
  item.append(picture);
  scrollDown(image.room);
  return item;
}

function addTick(item) {
  const tick = document.createElement("span");
  tick.className = "tick";
  tick.textContent = "…";
  item.append(tick);
  return tick;
}

/** The server's ack turns the clock into a tick; no ack in 5 s marks the message failed. */
function awaitDelivery(item, event, ...args) {
  const tick = addTick(item);
  chat.socket.timeout(5000).emit(event, ...args, (error, answer) => {
    if (error || answer.error) {
      item.classList.add("failed");
      tick.textContent = "✗";
      tick.title = error ? "no answer from the server" : answer.error;
      return;
    }
    item.classList.add("delivered");
    tick.textContent = "✓";
    tick.title = `delivered ${new Date(answer.at).toLocaleTimeString()}`;
    if (answer.id !== undefined) {
      item.dataset.id = answer.id;
      const room = item.parentElement.dataset.room;
      chat.lastId.set(room, Math.max(answer.id, chat.lastId.get(room) ?? -1));
    }
  });
}

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#text").value.trim();
  if (!text || !chat.current) return;
  $("#text").value = "";
  const item = messageItem(chat.current, chat.nick, true);
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  scrollDown(chat.current);
  awaitDelivery(item, "message", { room: chat.current, text });
});

$("#text").addEventListener("input", () => {
  const now = Date.now();
  if (!chat.current || now - chat.lastTyping < TYPING_EVERY_MS) return;
  chat.lastTyping = now;
  // Volatile: worthless once late, so never queued while disconnected.
  chat.socket.volatile.emit("typing", chat.current);
});

$("#image").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || !chat.current) return;
  if (file.size > MAX_IMAGE) return showError("images up to 512 KiB, please");
  const bytes = await file.arrayBuffer();
  const image = { room: chat.current, name: file.name, mime: file.type || "image/png" };
  const item = showImage(image, bytes, true);
  awaitDelivery(item, "image", image, bytes);
});

$("#leave").addEventListener("click", () => chat.current && leave(chat.current));

$("#new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("#room-name").value.trim();
  $("#room-name").value = "";
  if (room) join(room, true);
});

function startTyping(room, from) {
  const typists = chat.typing.get(room) ?? new Map();
  chat.typing.set(room, typists);
  clearTimeout(typists.get(from));
  typists.set(from, setTimeout(() => stopTyping(room, from), TYPING_SHOWN_MS));
  renderTyping();
}

function stopTyping(room, from) {
  const typists = chat.typing.get(room);
  if (!typists?.has(from)) return;
  clearTimeout(typists.get(from));
  typists.delete(from);
  renderTyping();
}

function renderTyping() {
  const names = [...(chat.typing.get(chat.current)?.keys() ?? [])];
  $("#typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function setComposerEnabled(enabled) {
  for (const control of ["#text", "#send", "#image"]) $(control).disabled = !enabled;
}

function showError(message) {
  $("#chat-error").textContent = message;
  setTimeout(() => ($("#chat-error").textContent = ""), 4000);
}

function scrollDown(room) {
  if (room === chat.current) $("#conversations").scrollTop = $("#conversations").scrollHeight;
}
