// Benchmark peer: Node.js socket.io 4.8 with its default engine (engine.io + ws),
// implementing the benchmark contract (crates/belfry-bench/README.md, "The servers' contract": events `echo`, `ack`,
// `join`, `bcast` on namespace "/"), optionally as one node of a cluster over Redis.
//
// Options are socket.io's defaults, written out; transports are left at the default
// (long-polling and WebSocket, with upgrade).
//
// Adapter:
// - REDIS_URL unset: socket.io's default in-memory adapter, exactly as the reference server
//   (the Redis modules are not even loaded).
// - REDIS_URL set (e.g. redis://127.0.0.1:6379): @socket.io/redis-adapter with two node-redis
//   v4 clients (pub, and a duplicate for sub), so that socket.to(room).emit(...) on one node
//   also reaches the sockets of that room on the other nodes. The port is bound only once the
//   adapter's subscriptions are confirmed by Redis (see waitForSubscriptions).
//
// Environment: PORT (default 3000), REDIS_URL (optional). Listens on 127.0.0.1:$PORT with
// Node's default backlog (511). Logs one start-up line on stderr, nothing per connection.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = parseInt(process.env.PORT || "3000", 10);
const redisUrl = process.env.REDIS_URL || "";

const options = {
  path: "/socket.io/",
  serveClient: false,
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
};

function onConnection(socket) {
  // echo: emit "echo" back to the sender with the same arguments.
  socket.on("echo", (...args) => {
    socket.emit("echo", ...args);
  });
  // ack: acknowledge with the same arguments.
  socket.on("ack", (...args) => {
    const cb = args.pop();
    if (typeof cb === "function") cb(...args);
  });
  // join: join the room, then ack (no arguments).
  socket.on("join", (room, cb) => {
    socket.join(room);
    if (typeof cb === "function") cb();
  });
  // bcast: emit "msg" with payload to every socket in the room except the sender,
  // then ack (no arguments) once the message is queued for every local recipient (and, with
  // the Redis adapter, once the PUBLISH has been handed to the pub client; emit is synchronous
  // and remote delivery is not awaited).
  socket.on("bcast", (room, payload, cb) => {
    socket.to(room).emit("msg", payload);
    if (typeof cb === "function") cb();
  });
}

// @socket.io/redis-adapter 8.3 issues its PSUBSCRIBE/SUBSCRIBE in the adapter constructor
// (run when the adapter is installed on the main namespace) and discards the promises: it
// exposes no way to await them. node-redis sends the commands of one connection in order
// and Redis answers them in order, so a SUBSCRIBE of our own, issued afterwards on the same
// sub client, is confirmed only after the adapter's subscriptions are in place. Awaiting it
// (then dropping it) is the barrier that lets us listen only once this node can receive
// broadcasts from the other nodes.
async function waitForSubscriptions(subClient) {
  const barrier = `bench-peer-ready#${process.pid}#${Date.now()}`;
  await subClient.subscribe(barrier, () => {});
  await subClient.unsubscribe(barrier);
}

async function main() {
  const httpServer = http.createServer();
  let adapterName = "in-memory adapter";
  let io;
  if (redisUrl) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: redisUrl });
    const subClient = pubClient.duplicate();
    // node-redis retries failed connections forever: fail fast (exit 1, never listen) if
    // Redis is unreachable at start-up; afterwards just log the error and let it reconnect
    // (without a listener an "error" event would crash the process).
    let started = false;
    for (const [name, client] of [["pub", pubClient], ["sub", subClient]]) {
      client.on("error", (err) => {
        console.error(`redis ${name} client error: ${err.message}`);
        if (!started) process.exit(1);
      });
    }
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io = new Server(httpServer, { ...options, adapter: createAdapter(pubClient, subClient) });
    await waitForSubscriptions(subClient);
    started = true;
    adapterName = `redis adapter ${require("@socket.io/redis-adapter/package.json").version} (${redisUrl})`;
  } else {
    io = new Server(httpServer, options);
  }
  io.on("connection", onConnection);

  httpServer.listen(port, "127.0.0.1", () => {
    console.error(
      `node socket.io ${require("socket.io/package.json").version} bench peer listening on 127.0.0.1:${port} (${adapterName})`
    );
  });
}

main().catch((err) => {
  console.error("bench peer failed to start:", err);
  process.exit(1);
});
