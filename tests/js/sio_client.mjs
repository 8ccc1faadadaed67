// Drives the official socket.io-client against a Belfry test server and prints one JSON line
// with what it saw. The Rust test that spawns it makes the assertions.
//
// usage: node sio_client.mjs <base-url> <scenario> <transport: default|websocket|polling>
//        [parser: default|msgpack]
import { io } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { report } from "./report.mjs";

const [url, scenario, transportArg, parserArg] = process.argv.slice(2);
const parser = parserArg === "msgpack" ? { parser: msgpackParser } : {};
const transports =
  transportArg === "websocket" ? ["websocket"] : transportArg === "polling" ? ["polling"] : undefined;
const result = { scenario };
const { run } = report(result);

const connect = (ns = "/", opts = {}) =>
  io(url + ns, { forceNew: true, reconnection: false, transports, ...parser, ...opts });
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));

// 500 emits of `event` with acks before the connection is up, flushed in one go on connect.
async function burst(event, ns = "/") {
  const socket = connect(ns);
  const acks = [];
  for (let i = 0; i < 500; i++) socket.emit(event, i, (v) => acks.push(v));
  await once(socket, "welcome");
  const deadline = Date.now() + 10000;
  while (acks.length < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  result.acks = acks.length;
  result.inOrder = acks.every((v, i) => v === i);
  socket.disconnect();
}

// Two events from a (slow, then fast) and one from b (fast), on namespace `ns`: the order of
// their answers.
async function slowOrder(ns) {
  const [a, b] = [connect(ns), connect(ns)];
  await Promise.all([a, b].map((s) => once(s, "welcome")));
  const order = [];
  const slow = a.emitWithAck("slow").then((r) => order.push(`a:${r}`));
  const queued = a.emitWithAck("fast").then((r) => order.push(`a:${r}`));
  const other = b.emitWithAck("fast").then((r) => order.push(`b:${r}`));
  await Promise.all([slow, queued, other]);
  result.order = order;
}

const scenarios = {
  // Connect with auth, events both ways, acks both ways, binary both ways, leave.
  async basic() {
    const socket = connect("/", { auth: { token: "abc" } });
    // What kinds of Engine.IO messages carried the packets (msgpack: binary only).
    const kinds = new Set();
    socket.io.engine.on("data", (data) => kinds.add(typeof data === "string" ? "text" : "binary"));
    const [id, auth] = await once(socket, "welcome");
    result.welcome = { idMatches: id === socket.id, auth };
    result.transport = socket.io.engine.transport.name;

    socket.emit("echo", { a: [1, "two", { three: 3 }] });
    result.echo = (await once(socket, "echo"))[0];

    result.ack = await socket.emitWithAck("ack", { x: "é" });
    result.sum = await socket.emitWithAck("sum", 2, 40);
    result.refused = await socket.emitWithAck("sum", "not a number", 1);

    socket.emit("bin", Buffer.from([1, 2, 3]), Buffer.from([255]));
    const bins = await once(socket, "bin");
    result.bin = bins.map((b) => Array.from(b));

    // The server asks; we answer its ack.
    socket.once("question", (q, callback) => callback(42));
    socket.emit("ask");
    result.answer = (await once(socket, "answer"))[0];

    socket.emit("kick");
    result.disconnectReason = (await once(socket, "disconnect"))[0];
    result.messageKinds = [...kinds].sort();
  },

  // Rooms and broadcasts: a and b in "r1", c outside it.
  async rooms() {
    const [a, b, c] = [connect(), connect(), connect()];
    await Promise.all([a, b, c].map((s) => once(s, "welcome")));
    await a.emitWithAck("join", "r1");
    await b.emitWithAck("join", "r1");
    const got = { a: [], b: [], c: [] };
    for (const [name, s] of Object.entries({ a, b, c })) s.on("said", (m) => got[name].push(m));
    await c.emitWithAck("say-to", "r1", "hello r1");
    await a.emitWithAck("say-to", "r1", "from a");
    await c.emitWithAck("say-all", "to everyone");
    await new Promise((r) => setTimeout(r, 200));
    result.got = got;
  },

  // Refusals: an unknown namespace, and a connect whose extractor fails.
  async refusals() {
    const nope = connect("/nope");
    result.unknown = (await once(nope, "connect_error"))[0].message;
    const typed = connect("/typed", { auth: { wrong: true } });
    result.typed = (await once(typed, "connect_error"))[0].message;
    const ok = connect("/typed", { auth: { token: "t" } });
    await once(ok, "connect");
    result.typedOk = ok.connected;
    // Middlewares: refused with message and data, then let in (an emit from a middleware arrives).
    const refused = connect("/guarded", { auth: { token: "wrong" } });
    const [error] = await once(refused, "connect_error");
    result.guarded = { message: error.message, data: error.data };
    const guarded = connect("/guarded", { auth: { token: "let-me-in" } });
    const early = once(guarded, "early");
    await once(guarded, "connect");
    result.early = (await early)[0];
    result.guardedOk = guarded.connected;
    const ioError = connect("/io-error");
    const [ioErr] = await once(ioError, "connect_error");
    result.ioError = { message: ioErr.message, data: ioErr.data ?? null };
  },

  // 10,000 events from one socket arrive at their handler in order.
  // 500 events with acks emitted before the connection is up: socket.io-client buffers them
  // and writes them in one go once connected (one POST on polling), as after a reconnect.
  async ackBurst() {
    await burst("ack");
  },

  // The same with a handler that waits before it answers (it goes on on a task of its own).
  async ackBurstLater() {
    await burst("ack-later");
  },

  // The same with serial handlers (each waits for the one before).
  async ackBurstLaterSerial() {
    await burst("ack-later", "/serial");
  },

  async ordering() {
    const socket = connect();
    await once(socket, "welcome");
    for (let i = 0; i < 10000; i++) socket.emit("seq", i);
    result.ordered = await socket.emitWithAck("seq-done");
  },

  // A broadcast with acks (one voter never answers), on_any, extensions, disconnecting.
  async extras() {
    const [a, b, c] = [connect(), connect(), connect()];
    await Promise.all([a, b, c].map((s) => once(s, "welcome")));
    for (const s of [a, b, c]) await s.emitWithAck("join", "voters");
    await a.emitWithAck("join", "other");
    a.on("vote?", (callback) => callback(true));
    b.on("vote?", (callback) => callback(false));
    c.on("vote?", () => {}); // never answers
    result.poll = await a.emitWithAck("poll");
    result.seen = await a.emitWithAck("seen");
    a.disconnect();
    await new Promise((r) => setTimeout(r, 100));
  },

  // Several listeners, once, a packet middleware, the outgoing listener.
  async listeners() {
    const s = connect();
    await once(s, "welcome");
    s.emit("multi", 1);
    s.emit("first-only");
    s.emit("first-only");
    // `off` removes every listener of the event; the second one finds none.
    s.emit("removable");
    s.emit("remove");
    s.emit("removable");
    result.forbidden = await s.emitWithAck("forbidden:x");
    result.limited = await s.emitWithAck("limited:x");
    const pong = once(s, "pong-out");
    s.emit("ping-out");
    await pong;
    result.log = await s.emitWithAck("log");
  },

  // Dynamic namespaces: two children, a refusal by the parent's middleware, a parent broadcast.
  async dynamic() {
    const one = connect("/room-1", { auth: { ok: true } });
    const two = connect("/room-2", { auth: { ok: true } });
    const joined = await Promise.all([one, two].map((s) => once(s, "joined")));
    result.joined = joined.map(([ns]) => ns);
    const refused = connect("/room-3", { auth: { ok: false } });
    result.refused = (await once(refused, "connect_error"))[0].message;
    const other = connect("/other");
    result.other = (await once(other, "connect_error"))[0].message;
    const all = await Promise.all([one, two].map((s) => once(s, "all")));
    result.all = all.map(([text]) => text);
    one.disconnect();
    two.disconnect();
    await new Promise((r) => setTimeout(r, 200));
  },

  // Buffers nested in the arguments, and a Buffer in an ack to the server.
  async binary() {
    const s = connect();
    await once(s, "welcome");
    result.upload = await s.emitWithAck("upload", {
      name: "a.png",
      file: Buffer.from([9, 8, 7]),
      thumbs: [Buffer.from([1]), Buffer.from([2, 2])],
    });
    s.on("give-bytes", (callback) => callback(Buffer.from([4, 5])));
    result.given = await s.emitWithAck("want-bytes");
    const file = once(s, "file");
    s.emit("send-file");
    const [obj, extra] = await file;
    result.file = {
      name: obj.name,
      isBuffer: Buffer.isBuffer(obj.data),
      data: Array.from(obj.data),
      extra: Array.from(extra),
    };
  },

  // A slow handler delays nothing (its socket's next event included).
  async slow() {
    await slowOrder("/");
  },

  // With serial handlers, a slow handler delays its own socket only.
  async slowSerial() {
    await slowOrder("/serial");
  },


  // Node's socket.handshake, and fetchSockets.
  async handshake() {
    const a = connect("/", { auth: { user: "ann" }, query: { room: "x" }, extraHeaders: { "x-test": "yes" } });
    const b = connect();
    await Promise.all([a, b].map((s) => once(s, "welcome")));
    result.handshake = await a.emitWithAck("whoami");
    await a.emitWithAck("join", "pair");
    await b.emitWithAck("join", "pair");
    result.fetched = await a.emitWithAck("fetch", "pair");
    result.ids = [a.id, b.id].sort();
  },

  // The server shuts down: the client is disconnected.
  async shutdown() {
    const socket = connect();
    await once(socket, "welcome");
    socket.emit("shutdown");
    result.reason = (await once(socket, "disconnect"))[0];
  },
};

run(scenarios[scenario]);
