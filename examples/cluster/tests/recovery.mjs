// Connection state recovery across the nodes of the cluster example on Redis Streams
// (ADAPTER=streams), as socket.io-client sees it: a client of the first node hears a message
// another client says through the second; its connection drops (a recoverable reason); a
// message is said while it is away; it comes back through the second node. Prints one JSON
// line: the welcomes, the client's ids, whether it was recovered, and every message it heard,
// in order. The Rust test (tests/nginx.rs) makes the assertions.
//
// socket.io-client is the one installed beside the example (its node_modules).
//
// usage: node recovery.mjs <first node url> <second node url>
import { io } from "socket.io-client";

const [first, second] = process.argv.slice(2);
const result = { steps: [], heard: [] };
setTimeout(() => {
  result.error = `timeout after ${result.steps.at(-1)}`;
  console.log(JSON.stringify(result));
  process.exit(2);
}, 20000);

const options = { transports: ["websocket"], forceNew: true, reconnection: false };
// Resolves with the node's welcome ({node, recovered}).
const welcomed = (socket) =>
  new Promise((resolve, reject) => {
    socket.once("welcome", resolve);
    socket.once("connect_error", reject);
  });
// What the client waits to hear: text → the resolve of the promise `hear(text)` returned.
const awaited = new Map();
const hear = (text) => new Promise((resolve) => awaited.set(text, resolve));

// The steps; an error ends them, and is reported.
const scenario = async () => {
  result.steps.push("connect");
  const client = io(first, options);
  // With recovery on, the offset follows the event's argument.
  client.on("said", ({ text }, offset) => {
    result.heard.push({ text, offset });
    awaited.get(text)?.();
  });
  const speaker = io(second, options);
  [result.firstWelcome] = await Promise.all([welcomed(client), welcomed(speaker)]);
  result.firstId = client.id;

  result.steps.push("before");
  const before = hear("before");
  speaker.emit("say", "before");
  await before;

  result.steps.push("away");
  const gone = new Promise((resolve) => client.once("disconnect", resolve));
  client.io.engine.close();
  result.disconnectReason = await gone;
  speaker.emit("say", "missed");
  // Said, written to the stream, and the session stored by the first node, before the client
  // comes back.
  await new Promise((resolve) => setTimeout(resolve, 300));

  result.steps.push("back");
  client.io.uri = second;
  const back = welcomed(client);
  client.connect();
  result.secondWelcome = await back;
  result.secondId = client.id;
  result.recovered = client.recovered;

  result.steps.push("after");
  const after = hear("after");
  speaker.emit("say", "after");
  await after;
  // Anything heard twice would come now.
  await new Promise((resolve) => setTimeout(resolve, 200));
  client.close();
  speaker.close();
};
await scenario().catch((error) => {
  result.error = String(error?.message ?? error);
});
console.log(JSON.stringify(result));
process.exit(0);
