// The Admin UI's view of one scripted conversation, on Node's socket.io 4.8 instrumented by
// `@socket.io/admin-ui` (started here) and on a Belfry server instrumented by `belfry::admin`
// with the same handlers (its URL is the argument). Prints one JSON line `{node, belfry}`; the
// Rust test (tests/tests/sio_admin.rs) compares them.
//
// The conversation: an admin client logs in, waits for a `server_stats`; then a user client
// connects over polling, upgrades to WebSocket, sends an event with an ack and a binary event
// that is echoed, and leaves. What is compared: the packets the server counted out
// (`packetsOut` of the `server_stats` after the conversation, less the `server_stats` packets
// themselves) against the packets with data the user client received, and the live reports the
// admin client got (names, the upgrade's `socket_updated`, binary arguments as buffers).
//
// usage: node admin_diff.mjs <belfry base url>
import http from "node:http";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { instrument } from "@socket.io/admin-ui";
import { report } from "./report.mjs";

const [belfryUrl] = process.argv.slice(2);
const result = { steps: [] };
let server;
const { run } = report(result, 40000, async () => server?.close());
const step = (name) => result.steps.push(name);
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));

// bcrypt of "changeit".
const HASH = "$2b$10$iY.XPxgARsemH1.30mM5MeOuBRmC8xu0DmM9dg8KlwYzO4plFv/Ka";

async function startNode() {
  const httpServer = http.createServer();
  const io = new Server(httpServer);
  io.on("connection", (socket) => {
    socket.on("ping2", (callback) => callback("pong"));
    socket.on("bin", (data) => socket.emit("bin", data));
  });
  instrument(io, { auth: { type: "basic", username: "admin", password: HASH }, mode: "development" });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  server = io;
  return `http://127.0.0.1:${httpServer.address().port}`;
}

/// A JSON-able picture of a value: buffers as `{buffer: [...]}`.
const picture = (value) =>
  JSON.parse(
    JSON.stringify(value, (_key, v) =>
      v && v.type === "Buffer" && Array.isArray(v.data) ? { buffer: v.data } : v,
    ),
  );

async function scenario(url) {
  const admin = connect(`${url}/admin`, {
    forceNew: true,
    reconnection: false,
    auth: { username: "admin", password: "changeit" },
  });
  const stats = [];
  admin.on("server_stats", (s) => stats.push(s));
  const live = [];
  for (const event of ["socket_connected", "socket_updated", "event_received", "event_sent", "socket_disconnected"]) {
    admin.on(event, (...args) => live.push([event, ...args]));
  }
  await once(admin, "connect");
  // Every packet of the admin's own login is counted by this first report.
  await once(admin, "server_stats");
  const before = stats.length;
  // Every event the admin client gets from now on, by name.
  const adminEvents = [];
  admin.onAny((event) => adminEvents.push(event));

  const user = connect(url, { forceNew: true, reconnection: false, transports: ["polling", "websocket"] });
  const received = { packets: 0, bytes: 0 };
  user.io.on("open", () => {
    // The open packet came before the listener could be set: counted by hand below.
    user.io.engine.on("packet", ({ data }) => {
      if (data) {
        received.packets++;
        received.bytes += typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
      }
    });
  });
  await once(user, "connect");
  const upgraded = user.io.engine.transport.name === "websocket" ? Promise.resolve() : once(user.io.engine, "upgrade");
  await upgraded;
  const id = user.id;
  const pong = await user.emitWithAck("ping2");
  user.emit("bin", { tag: "t", data: Buffer.from([1, 2, 3]) });
  const [echo] = await once(user, "bin");
  user.disconnect();
  // The first report made after all of it.
  await once(admin, "server_stats");
  await once(admin, "server_stats");
  admin.close();

  const window = stats.slice(before);
  const sum = (type) =>
    window.flatMap((s) => s.aggregatedEvents).filter((e) => e.type === type).reduce((n, e) => n + e.count, 0);
  // The reports are counted in the next one: all but the last of the window are in it.
  const statsPackets = window.length - 1;
  const norm = (v) => (v === id ? "<user>" : v);
  return {
    pong,
    echo: picture(echo),
    // Without the open packet, which came before the listener existed (and which Node's
    // instrumentation does not count either: it listens to a connection once it is open).
    userPackets: received.packets,
    packetsOutLessStats: sum("packetsOut") - statsPackets,
    adminEvents: adminEvents.filter((e) => e !== "server_stats").sort().join(","),
    live: live
      .filter(([, ...args]) => args.some((a) => a === id || (a && a.id === id)))
      .map(([event, ...args]) => {
        const [first, second, third] = args;
        switch (event) {
          case "socket_updated":
            return [event, { ...first, id: norm(first.id) }];
          case "event_received":
          case "event_sent":
            return [event, first, norm(second), picture(third)];
          case "socket_disconnected":
            return [event, first, norm(second), third];
          default:
            return [event];
        }
      }),
  };
}

async function main() {
  const nodeUrl = await startNode();
  step("node server");
  result.node = await scenario(nodeUrl);
  step("node");
  result.belfry = await scenario(belfryUrl);
  step("belfry");
}

run(main);
