// Drives the official engine.io-client against a Belfry echo server and prints one JSON line
// with what it saw. The Rust test that spawns it makes the assertions.
//
// usage: node engine_client.mjs <base-url> <polling|websocket|upgrade> <big-size> <server|client>
//   server: ask the server to close ("close-me"); client: close from the client.
import { Socket } from "engine.io-client";

const [url, mode, bigArg, closer] = process.argv.slice(2);
const big = Number(bigArg);
const transports = mode === "polling" ? ["polling"] : mode === "websocket" ? ["websocket"] : ["polling", "websocket"];

const socket = new Socket(url, { path: "/socket.io/", transports, upgrade: mode === "upgrade" });
const result = { mode, openTransport: null, finalTransport: null, texts: [], binary: null, bigLength: null, closeReason: null };
const timer = setTimeout(() => {
  result.error = "timeout";
  console.log(JSON.stringify(result));
  process.exit(2);
}, 15000);

const inbox = [];
let waiting = null;
socket.on("message", (data) => {
  inbox.push(data);
  if (waiting) {
    const w = waiting;
    waiting = null;
    w();
  }
});
const next = () => new Promise((resolve) => {
  const take = () => resolve(inbox.shift());
  if (inbox.length) take(); else waiting = take;
});

socket.on("open", async () => {
  result.openTransport = socket.transport.name;
  if (mode === "upgrade") {
    // Messages sent before, during and after the upgrade keep their order.
    const sent = [];
    for (let i = 0; i < 50; i++) { socket.send(`n${i}`); sent.push(`n${i}`); }
    await new Promise((resolve) => socket.once("upgrade", resolve));
    for (let i = 50; i < 100; i++) { socket.send(`n${i}`); sent.push(`n${i}`); }
    for (let i = 0; i < 100; i++) result.texts.push(await next());
  } else {
    socket.send("hello");
    socket.send("héllo wörld ✓");
    result.texts.push(await next(), await next());
  }
  socket.send(new Uint8Array([1, 2, 3, 255]));
  const bin = await next();
  result.binary = Array.from(new Uint8Array(bin.buffer ? bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) : bin));
  socket.send("x".repeat(big));
  result.bigLength = (await next()).length;
  result.finalTransport = socket.transport.name;
  if (closer === "client") {
    socket.close();
  } else {
    socket.send("close-me");
  }
});

socket.on("close", (reason) => {
  result.closeReason = reason;
  clearTimeout(timer);
  console.log(JSON.stringify(result));
  // Let the client flush its close packet before the process exits.
  setTimeout(() => process.exit(0), 100);
});
