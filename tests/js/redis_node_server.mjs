// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.3, for the mixed Belfry + Node
// cluster test (tests/tests/redis_cluster.rs). It behaves as the Belfry servers of that test:
// a socket joins the room named in its auth and keeps its name in `socket.data`; "shout"
// broadcasts; "fetch" answers the ids and names of every socket of the cluster; "poll" asks
// every client of the cluster for a vote (broadcast with acks); "whoami" asks the other servers
// their names (serverSideEmit with ack) after sending them a "note" (without ack); "notes" and
// "rooms" answer what this server received and the cluster's rooms. Prints {"port": N}.
//
// With "sharded", the server speaks the sharded protocol (createShardedAdapter, Redis 7), which
// has no allRooms.
//
// usage: node redis_node_server.mjs <redis url> <server name> [classic|sharded]
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [redisUrl, name, protocol = "classic"] = process.argv.slice(2);
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
// Answers to other servers go to their own response channels (Belfry listens there too).
const io = new Server(http, {
  adapter:
    protocol === "sharded"
      ? createShardedAdapter(pub, sub)
      : createAdapter(pub, sub, { publishOnSpecificResponseChannel: true }),
});
const notes = [];
io.on("note", (text) => notes.push(text));
io.on("whoami", (from, ack) => ack(`${name} (asked by ${from})`));
io.on("connection", (socket) => {
  if (socket.handshake.auth.room) socket.join(socket.handshake.auth.room);
  socket.data.name = socket.handshake.auth.name;
  socket.on("shout", ({ room, text, bin }, ack) => {
    const target = room ? io.to(room) : io;
    if (bin) target.emit("shout", text, Buffer.from(bin));
    else target.emit("shout", text);
    ack?.("ok");
  });
  socket.on("fetch", async (ack) => {
    const sockets = await io.fetchSockets();
    ack({ ids: sockets.map((s) => s.id).sort(), names: sockets.map((s) => s.data.name).sort() });
  });
  socket.on("join", async (room, ack) => {
    io.socketsJoin(room);
    ack("ok");
  });
  socket.on("poll", async (ack) => {
    const votes = await io.timeout(5000).emitWithAck("vote?", "poll");
    ack(votes.map((v) => `${v.name}:${[...v.bin].join(",")}`).sort());
  });
  socket.on("whoami", async (ack) => {
    io.serverSideEmit("note", `note from ${name}`);
    const answers = await io.serverSideEmitWithAck("whoami", name);
    ack(answers.sort());
  });
  socket.on("notes", (ack) => ack([...notes].sort()));
  socket.on("rooms", async (ack) => {
    const rooms = await io.of("/").adapter.allRooms();
    ack([...rooms].filter((room) => /^r\d$/.test(room)).sort());
  });
});
http.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: http.address().port })));
