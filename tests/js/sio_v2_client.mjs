// The official socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4) against a Belfry server
// with `allow_eio3`: the implicit `/`, events and acks both ways, binary both ways, a namespace
// with query auth, refusals, a server disconnect. Prints one JSON line; the Rust test
// (tests/tests/sio_v2_client.rs) makes the assertions.
//
// usage: node sio_v2_client.mjs <base-url> <polling|websocket|default> [b64]
import ioV2 from "socket.io-client-v2";
import { report } from "./report.mjs";

const [url, transportArg, b64] = process.argv.slice(2);
const transports =
  transportArg === "websocket" ? ["websocket"] : transportArg === "polling" ? ["polling"] : ["polling", "websocket"];
const opts = { forceNew: true, reconnection: false, transports, forceBase64: b64 === "b64" };
const result = { steps: [] };
const { run } = report(result);
const step = (name) => result.steps.push(name);
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const socket = ioV2(url, opts);
  const welcome = once(socket, "welcome");
  await once(socket, "connect");
  result.idIsEngineId = socket.id === socket.io.engine.id;
  result.welcome = (await welcome)[0];
  step("connected");

  socket.emit("echo", { a: [1, "two"] });
  result.echo = (await once(socket, "echo"))[0];
  result.sum = await new Promise((resolve) => socket.emit("sum", 2, 40, resolve));
  socket.emit("bin", Buffer.from([1, 2, 3]), Buffer.from([255]));
  result.bin = (await once(socket, "bin")).map((b) => Array.from(b));
  socket.once("question", (q, callback) => callback(42));
  socket.emit("ask");
  result.answer = (await once(socket, "answer"))[0];
  step("events");

  // Other namespaces: CONNECT with the query as auth; refusals come as "error".
  const guarded = ioV2(`${url}/guarded`, { ...opts, query: { token: "ok" } });
  const guardedWelcome = once(guarded, "welcome");
  await once(guarded, "connect");
  result.guardedId = guarded.id;
  result.guardedEngineId = guarded.io.engine.id;
  result.guarded = (await guardedWelcome)[0];
  const refused = ioV2(`${url}/guarded`, { ...opts, query: { token: "bad" } });
  result.refused = (await once(refused, "error"))[0];
  const unknown = ioV2(`${url}/nope`, opts);
  result.unknown = (await once(unknown, "error"))[0];
  step("namespaces");

  // The client pings (v3): still connected after a few of the server's short intervals.
  await sleep(700);
  result.connectedAfterPings = socket.connected;
  result.transport = socket.io.engine.transport.name;

  socket.emit("kick");
  result.disconnectReason = (await once(socket, "disconnect"))[0];
  [guarded, refused, unknown].forEach((s) => s.close());
}

run(main);
