// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.3 or @socket.io/postgres-adapter
// 0.5, for the mixed Belfry + Node cluster tests (tests/tests/redis_cluster.rs). It behaves as
// the Belfry servers of those tests: a socket joins the room named in its auth and keeps its
// name in `socket.data`; "shout" broadcasts; "fetch" answers the ids and names of every socket
// of the cluster; "poll" asks every client of the cluster for a vote (broadcast with acks);
// "whoami" asks the other servers their names (serverSideEmit with ack) after sending them a
// "note" (without ack); "notes" and "rooms" answer what this server received and the cluster's
// rooms; "leave" and "kick" make the sockets of a room leave it, or disconnect them, on every
// server. Prints {"port": N} once it serves.
//
// With "sharded", the server speaks the sharded protocol (createShardedAdapter, Redis 7), which
// has no allRooms.
//
// With "postgres", the url is a PostgreSQL one (its database has the adapter's table,
// socket_io_attachments) and the adapter is @socket.io/postgres-adapter (no allRooms: "rooms"
// answers {"error": …}). Its servers know each other only by heartbeats, so this one waits until
// its LISTEN is active, announces itself again (adapter.init(): the first INITIAL_HEARTBEAT may
// go out before it listens, and then it misses the answers), and, given `servers` (the size of
// the whole cluster, itself included), waits until it knows that many (serverCount()) before
// printing {"port": N, "servers": <serverCount()>}; exits with status 1 if it does not within
// 9 s. Failed publishes and Postgres errors are printed on stderr; a lost Postgres connection
// does not kill the process (the adapter reconnects).
//
// With "streams", the adapter is @socket.io/redis-streams-adapter 0.3 (no allRooms) and
// connection state recovery is on (Node's defaults).
//
// With "sharded-cluster", the url is the comma-separated urls of a Redis Cluster's nodes, and
// the sharded adapter runs on node-redis's cluster client.
//
// usage: node redis_node_server.mjs <redis url> <server name> [classic|sharded|sharded-cluster|streams]
//        node redis_node_server.mjs <postgres url> <server name> postgres [servers]
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createPostgresAdapter } from "@socket.io/postgres-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient, createCluster } from "redis";
import pg from "pg";

const [url, name, protocol = "classic", servers] = process.argv.slice(2);

const redisAdapter = async () => {
  if (protocol === "streams") {
    const client = createClient({ url });
    await client.connect();
    return createStreamsAdapter(client);
  }
  const pub =
    protocol === "sharded-cluster"
      ? createCluster({ rootNodes: url.split(",").map((node) => ({ url: node })) })
      : createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  // Answers to other servers go to their own response channels (Belfry listens there too).
  return protocol === "sharded" || protocol === "sharded-cluster"
    ? createShardedAdapter(pub, sub)
    : createAdapter(pub, sub, { publishOnSpecificResponseChannel: true });
};

const postgresAdapter = () => {
  const pool = new pg.Pool({ connectionString: url });
  const report = (what) => (error) => console.error(`${name}: ${what}: ${error?.message ?? error}`);
  // An idle pooled client that fails (Postgres restarted) is reported by the pool; the
  // adapter's LISTEN client is checked out and has no "error" listener of the adapter's own
  // (a restart of Postgres would otherwise kill the process): every client gets one.
  pool.on("error", report("pool"));
  pool.on("connect", (client) => client.on("error", report("client")));
  return createPostgresAdapter(pool, { errorHandler: report("adapter") });
};

const http = createServer();
const io = new Server(http, {
  adapter: protocol === "postgres" ? postgresAdapter() : await redisAdapter(),
  // The streams adapter recovers connections across servers.
  ...(protocol === "streams" ? { connectionStateRecovery: {} } : {}),
});
const notes = [];
io.on("note", (text) => notes.push(text));
io.on("whoami", (from, ack) => ack(`${name} (asked by ${from})`));
io.on("connection", (socket) => {
  if (socket.handshake.auth.room) socket.join(socket.handshake.auth.room);
  socket.data.name = socket.handshake.auth.name;
  socket.on("shout", ({ room, except, text, bin }, ack) => {
    let target = room ? io.to(room) : io;
    if (except) target = target.except(except);
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
  socket.on("leave", async (room, ack) => {
    io.socketsLeave(room);
    ack("ok");
  });
  // Answered first: the asking socket may be one of those kicked.
  socket.on("kick", async (room, ack) => {
    ack("ok");
    io.in(room).disconnectSockets();
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
    const adapter = io.of("/").adapter;
    if (typeof adapter.allRooms !== "function") return ack({ error: "no allRooms in this adapter" });
    const rooms = await adapter.allRooms();
    ack([...rooms].filter((room) => /^r\d$/.test(room)).sort());
  });
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Postgres: until this server listens, then knows `servers` servers (see above).
const joinPostgresCluster = async () => {
  const adapter = io.of("/").adapter;
  const deadline = Date.now() + 9000;
  const giveUp = (what) => {
    console.error(`${name}: ${what} after 9 s`);
    process.exit(1);
  };
  // The adapter's PubSubClient sets its `client` once every LISTEN has returned.
  while (!adapter.client?.client) {
    if (Date.now() > deadline) giveUp("no LISTEN");
    await sleep(20);
  }
  adapter.init();
  let count = await adapter.serverCount();
  while (servers !== undefined && count < Number(servers)) {
    if (Date.now() > deadline) giveUp(`${count} of ${servers} servers known`);
    await sleep(20);
    count = await adapter.serverCount();
  }
  return count;
};

http.listen(0, "127.0.0.1", async () => {
  const hello = { port: http.address().port };
  if (protocol === "postgres") hello.servers = await joinPostgresCluster();
  console.log(JSON.stringify(hello));
});
