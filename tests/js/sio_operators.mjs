// The per-socket operators and rooms one or many, with the official socket.io-client: what a
// Belfry server's `socket.timeout(d).emit_with_ack`, `join`/`leave`/`to` with arrays and
// `off`/`off_listener` look like to clients. Prints one JSON line; the Rust test asserts.
//
// usage: node sio_operators.mjs <base-url> <scenario: timeout|rooms|off> <transport>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url, scenario, transportArg] = process.argv.slice(2);
const transports = transportArg === "polling" ? ["polling"] : ["websocket"];
const result = { scenario };
const { run } = report(result);

const connect = () => io(url, { forceNew: true, reconnection: false, transports });
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const scenarios = {
  // The server asks twice with its own timeouts: one question is answered, one never is.
  async timeout() {
    const socket = connect();
    socket.on("answered?", (callback) => callback("yes"));
    socket.on("ignored?", () => {});
    await once(socket, "connect");
    result.answers = await socket.emitWithAck("ask");
    socket.disconnect();
  },

  // a in r1 and r2, b in r2 and r3, c in r3: broadcasts to several rooms at once.
  async rooms() {
    const [a, b, c] = [connect(), connect(), connect()];
    await Promise.all([a, b, c].map((s) => once(s, "connect")));
    const got = { a: [], b: [], c: [] };
    for (const [name, s] of Object.entries({ a, b, c })) s.on("said", (m) => got[name].push(m));
    result.rooms = {
      a: await a.emitWithAck("join", ["r1", "r2"]),
      b: await b.emitWithAck("join", ["r2", "r3"]),
      c: await c.emitWithAck("join", ["r3"]),
    };
    // To r1 or r2 but the sender: a once (in both), b.
    await c.emitWithAck("say-to", ["r1", "r2"], "first");
    // To r2 or r3, except r1, from the server: b and c.
    await c.emitWithAck("io-to-except", ["r2", "r3"], ["r1"], "second");
    // a leaves both: to r1 or r2 reaches b alone.
    result.afterLeave = await a.emitWithAck("leave", ["r1", "r2"]);
    await c.emitWithAck("say-to", ["r1", "r2"], "third");
    await sleep(200);
    result.got = got;
    for (const s of [a, b, c]) s.disconnect();
  },

  // Two listeners of "knock": one removed by its id, then both by the event name.
  async off() {
    const socket = connect();
    const pongs = [];
    socket.on("heard", (who) => pongs.push(who));
    await once(socket, "connect");
    const round = async () => {
      pongs.length = 0;
      socket.emit("knock");
      await sleep(200);
      return [...pongs].sort();
    };
    result.both = await round();
    result.removed = await socket.emitWithAck("off-one");
    result.one = await round();
    result.removedAgain = await socket.emitWithAck("off-one");
    await socket.emitWithAck("off-all");
    result.none = await round();
    socket.disconnect();
  },
};

run(scenarios[scenario]);
