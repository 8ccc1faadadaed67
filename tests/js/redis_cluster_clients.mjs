// Clients on every server of the mixed cluster (two Belfry, one Node, one Redis), plus the
// Redis emitter: who receives what, what fetchSockets sees, the answers to broadcasts with
// acks, server-side emits and allRooms asked of each kind of server. Prints one JSON line; the
// Rust test (tests/tests/redis_cluster.rs) makes the assertions.
//
// With "sharded" (the servers speak the sharded protocol), there is no emitter and no allRooms:
// servers shout where the emitter would publish, and the script reports instead how many
// servers subscribe each room's own channel (PUBSUB SHARDNUMSUB) while the clients are
// connected and after they left.
//
// With "postgres" (the servers share a PostgreSQL database through @socket.io/postgres-adapter and
// its Belfry counterpart; the url is the database's), servers shout where the emitter would
// publish (@socket.io/postgres-emitter 0.1.1 sends no top-level nsp, which the adapter 0.5
// drops), and there is neither allRooms nor room channels to count.
//
// With "streams" (@socket.io/redis-streams-adapter 0.3, whose emitter npm does not publish),
// the same as with "postgres".
//
// With "sharded-cluster", the same as "sharded" on a Redis Cluster (the url: its nodes' urls,
// comma-separated).
//
// usage: node redis_cluster_clients.mjs '<["belfry A url","belfry B url","node url"]>' <redis url> [classic|sharded|sharded-cluster|streams]
//        node redis_cluster_clients.mjs '<["belfry A url","belfry B url","node url"]>' <postgres url> postgres
import { io } from "socket.io-client";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient, createCluster } from "redis";

const [urls, redisUrl, protocol = "classic"] = process.argv.slice(2);
// On a Redis Cluster (the url: its nodes' urls, comma-separated), the sharded protocol.
const onCluster = protocol === "sharded-cluster";
const sharded = protocol === "sharded" || onCluster;
const postgres = protocol === "postgres";
// No emitter of the streams protocol is published on npm: servers shout instead.
const streams = protocol === "streams";
const [a, b, n] = JSON.parse(urls);
const result = { received: {}, steps: [], disconnects: {} };
setTimeout(() => {
  result.error = `timeout after ${result.steps.at(-1)}`;
  console.log(JSON.stringify(result));
  process.exit(2);
}, 40000);

const plan = { a1: [a, "r1"], b1: [b, "r1"], b2: [b, "r2"], n1: [n, "r1"], n2: [n, "r2"] };
const sockets = {};
await Promise.all(
  Object.entries(plan).map(
    ([name, [url, room]], index) =>
      new Promise((resolve, reject) => {
        const socket = io(url, { auth: { room, name }, forceNew: true, reconnection: false });
        socket.on("vote?", (question, ack) => ack({ name, bin: Buffer.from([index]) }));
        result.received[name] = [];
        // With connection state recovery on (streams), an offset (a string) follows the
        // arguments: only binary is the shout's.
        socket.on("shout", (text, bin) =>
          result.received[name].push(
            bin instanceof ArrayBuffer || ArrayBuffer.isView(bin)
              ? `${text}:${[...new Uint8Array(bin)].join(",")}`
              : text,
          ),
        );
        socket.on("disconnect", (reason) => {
          result.disconnects[name] = reason;
        });
        socket.on("connect", () => resolve());
        socket.on("connect_error", reject);
        sockets[name] = socket;
      }),
  ),
);
result.ids = Object.values(sockets).map((s) => s.id).sort();

const redis =
  postgres || streams
    ? null
    : onCluster
      ? createCluster({ rootNodes: redisUrl.split(",").map((url) => ({ url })) })
      : createClient({ url: redisUrl });
await redis?.connect();
const emitter = redis && !sharded && new Emitter(redis);
// Where the emitter publishes to a room: the emitter itself, or a server's shout when sharded
// or on Postgres.
const toRoom = (room, text, via) =>
  sharded || postgres || streams
    ? sockets[via].emitWithAck("shout", { room, text })
    : emitter.to(room).emit("shout", text);
const roomSubscribers = async () => {
  const counts = {};
  for (const room of ["r1", "r2", "r3", "r4"]) {
    const channel = `socket.io#/#${room}#`;
    const command = ["PUBSUB", "SHARDNUMSUB", channel];
    // On a cluster, asked of the node that owns the channel's slot.
    const reply = onCluster
      ? await redis.sendCommand(channel, true, command)
      : await redis.sendCommand(command);
    counts[room] = Number(reply[1]);
  }
  return counts;
};
const settle = () => new Promise((resolve) => setTimeout(resolve, 400));
const step = async (name, action) => {
  result.steps.push(name);
  await action();
  await settle();
};

try {
  await step("belfry to all", () => sockets.a1.emitWithAck("shout", { text: "from-belfry" }));
  await step("node to r1", () => sockets.n2.emitWithAck("shout", { room: "r1", text: "from-node" }));
  await step("belfry binary to r2", () =>
    sockets.b2.emitWithAck("shout", { room: "r2", text: "bin-belfry", bin: [1, 2, 3] }),
  );
  await step("node binary to r2", () =>
    sockets.n1.emitWithAck("shout", { room: "r2", text: "bin-node", bin: [4, 5] }),
  );
  await step("emitter to r1", () => toRoom("r1", "from-emitter", "b2"));
  await step("fetch", async () => {
    result.fetchFromBelfry = await sockets.a1.timeout(8000).emitWithAck("fetch");
    result.fetchFromNode = await sockets.n1.timeout(8000).emitWithAck("fetch");
  });
  await step("poll", async () => {
    result.pollFromBelfry = await sockets.a1.timeout(10000).emitWithAck("poll");
    result.pollFromNode = await sockets.n1.timeout(10000).emitWithAck("poll");
  });
  await step("server-side emits", async () => {
    result.whoami = {};
    for (const name of ["a1", "b1", "n1"]) {
      result.whoami[name] = await sockets[name].timeout(8000).emitWithAck("whoami");
    }
  });
  await step("notes", async () => {
    result.notes = {};
    for (const name of ["a1", "b1", "n1"]) {
      result.notes[name] = await sockets[name].timeout(8000).emitWithAck("notes");
    }
  });
  await step("node socketsJoin r3", () => sockets.n1.emitWithAck("join", "r3"));
  await step("emitter to r3", () => toRoom("r3", "r3", "n2"));
  await step("belfry socketsJoin r4", () => sockets.a1.emitWithAck("join", "r4"));
  await step("emitter to r4", () => toRoom("r4", "r4", "a1"));
  await step("belfry to all except r2", () =>
    sockets.a1.emitWithAck("shout", { except: "r2", text: "not-r2" }),
  );
  await step("node to all except r1", () =>
    sockets.n2.emitWithAck("shout", { except: "r1", text: "not-r1" }),
  );
  await step("node socketsLeave r3", () => sockets.n1.emitWithAck("leave", "r3"));
  await step("belfry to r3, left", () =>
    sockets.b1.emitWithAck("shout", { room: "r3", text: "r3-after-leave" }),
  );
  if (sharded) {
    await step("room subscribers", async () => {
      result.roomSubscribers = await roomSubscribers();
    });
  } else if (!postgres && !streams) {
    await step("allRooms", async () => {
      result.roomsFromBelfry = await sockets.b2.timeout(8000).emitWithAck("rooms");
      result.roomsFromNode = await sockets.n2.timeout(8000).emitWithAck("rooms");
    });
  }
  // Last: the kicks disconnect everyone (r2 from a Belfry server, then r1 from Node).
  const gone = (names) =>
    Promise.all(
      names.map((name) =>
        sockets[name].connected
          ? new Promise((resolve) => sockets[name].once("disconnect", resolve))
          : Promise.resolve(),
      ),
    );
  await step("belfry disconnectSockets r2", async () => {
    await sockets.b1.emitWithAck("kick", "r2");
    await gone(["b2", "n2"]);
  });
  await step("node disconnectSockets r1", async () => {
    await sockets.n1.emitWithAck("kick", "r1");
    await gone(["a1", "b1", "n1"]);
  });
  result.steps.push("done");
} catch (error) {
  result.error = String(error?.stack ?? error);
}
for (const socket of Object.values(sockets)) socket.disconnect();
if (sharded && !result.error) {
  await settle();
  result.roomSubscribersAfter = await roomSubscribers();
}
await redis?.quit();
console.log(JSON.stringify(result));
process.exit(0);
