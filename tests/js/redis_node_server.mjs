// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.3, for the mixed Belfry + Node
// cluster test (tests/tests/redis_cluster.rs). It behaves as the Belfry servers of that test:
// a socket joins the room named in its auth; "shout" broadcasts; "fetch" answers the ids of
// every socket of the cluster. Prints {"port": N} once listening.
//
// usage: node redis_node_server.mjs <redis url>
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [redisUrl] = process.argv.slice(2);
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub) });
io.on("connection", (socket) => {
  if (socket.handshake.auth.room) socket.join(socket.handshake.auth.room);
  socket.on("shout", ({ room, text, bin }, ack) => {
    const target = room ? io.to(room) : io;
    if (bin) target.emit("shout", text, Buffer.from(bin));
    else target.emit("shout", text);
    ack?.("ok");
  });
  socket.on("fetch", async (ack) => {
    const sockets = await io.fetchSockets();
    ack(sockets.map((s) => s.id).sort());
  });
  socket.on("join", async (room, ack) => {
    io.socketsJoin(room);
    ack("ok");
  });
});
http.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: http.address().port })));
