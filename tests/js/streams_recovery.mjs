// Connection state recovery across the servers of a Redis Streams cluster, as socket.io-client
// 4.8 sees it: a client connects to the first server and gets one broadcast; its transport
// closes (a recoverable reason); two broadcasts go to its room while it is away; it comes back
// through the second server. Prints one JSON line: whether it was recovered with the same id,
// every event it got, in order, with the offsets it saw. The Rust test
// (tests/tests/redis_streams.rs) makes the assertions.
//
// usage: node streams_recovery.mjs <first server url> <second server url> <shouting server url>
import { io } from "socket.io-client";

const [first, second, shouting] = process.argv.slice(2);
const result = { steps: [] };
setTimeout(() => {
  result.error = `timeout after ${result.steps.at(-1)}`;
  console.log(JSON.stringify(result));
  process.exit(2);
}, 20000);

const connected = (socket) =>
  new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
const until = async (check) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
};

try {
  result.steps.push("connect");
  const shouter = io(shouting, { auth: { name: "shouter" }, forceNew: true, reconnection: false });
  const client = io(first, { auth: { room: "away", name: "wanderer" }, forceNew: true, reconnection: false });
  const got = [];
  client.on("shout", (...args) => got.push(args));
  await Promise.all([connected(shouter), connected(client)]);
  result.firstId = client.id;
  result.firstRecovered = client.recovered;

  result.steps.push("before");
  await shouter.emitWithAck("shout", { room: "away", text: "before" });
  await until(() => got.length === 1);

  result.steps.push("away");
  const gone = new Promise((resolve) => client.once("disconnect", resolve));
  client.io.engine.close();
  result.disconnectReason = await gone;
  await shouter.emitWithAck("shout", { room: "away", text: "missed-1" });
  await shouter.emitWithAck("shout", { room: "away", text: "missed-2" });
  // Written to the stream and read by every server before the client comes back.
  await new Promise((resolve) => setTimeout(resolve, 300));

  result.steps.push("back");
  client.io.uri = second;
  const back = connected(client);
  client.connect();
  await back;
  result.secondId = client.id;
  result.recovered = client.recovered;
  await shouter.emitWithAck("shout", { room: "away", text: "after" });
  await until(() => got.some(([text]) => text === "after"));
  await new Promise((resolve) => setTimeout(resolve, 200));
  result.got = got;
  result.steps.push("done");
  client.disconnect();
  shouter.disconnect();
} catch (error) {
  result.error = String(error?.stack ?? error);
}
console.log(JSON.stringify(result));
process.exit(0);
