// Connection state recovery with the official socket.io-client: a client loses its transport,
// comes back, and reports what it got. Prints one JSON line; the Rust test makes the assertions.
//
// usage: node recovery.mjs <base-url> <transport: websocket|polling> <reconnection delay ms>
//        [parser: default|msgpack]
import { io } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { report } from "./report.mjs";

const [url, transport, delayArg, parserArg] = process.argv.slice(2);
const parser = parserArg === "msgpack" ? { parser: msgpackParser } : {};
const delay = Number(delayArg);
const result = {};
const { run } = report(result);

const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const a = io(url, {
    forceNew: true,
    transports: [transport],
    ...parser,
    reconnectionDelay: delay,
    reconnectionDelayMax: delay,
    randomizationFactor: 0,
  });
  const b = io(url, { forceNew: true, transports: [transport], reconnection: false, ...parser });
  const bWelcomed = once(b, "welcome");
  const events = [];
  a.onAny((event, ...args) => events.push([event, ...args]));

  // [id, recovered, data, rooms, offset]
  result.stage = "welcome";
  const first = await once(a, "welcome");
  await bWelcomed;
  result.first = { args: first, id: a.id, recovered: a.recovered };
  result.stage = "join";
  await a.emitWithAck("join", "r");

  // The transport is lost: the manager reconnects after `delay`.
  events.length = 0;
  const disconnected = once(a, "disconnect");
  // Registered now: with polling, the missed events, CONNECT and the welcome can come in one
  // response, handled before any promise callback runs.
  const reconnected = once(a, "connect");
  const welcomed = once(a, "welcome");
  a.io.engine.close();
  result.stage = "disconnect";
  result.disconnectReason = (await disconnected)[0];
  // Meanwhile, b makes the server broadcast.
  result.stage = "broadcast";
  await b.emitWithAck("broadcast");

  result.stage = "reconnect";
  await reconnected;
  result.second = { id: a.id, recovered: a.recovered };
  // The missed events are handed out before "connect"; the handler's welcome follows.
  result.stage = "welcome again";
  await welcomed;
  await sleep(100);
  result.events = events;
  a.close();
  b.close();
}

run(main);
