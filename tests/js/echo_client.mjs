// socket.io-client against an echo server (examples/echo): each case's arguments are sent as
// `echo` with an ack; what comes back as the `echo` event and as the ack is reported, binary as
// {"$bin": [bytes]}, object keys in the order they came. Prints one JSON line.
//
// usage: node echo_client.mjs <url> <websocket|polling>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url, transport] = process.argv.slice(2);
const result = { cases: {} };
const { run } = report(result, 20000);

// Binary as {"$bin": [...]}, everything else as it is (keys in order).
const show = (v) =>
  v instanceof ArrayBuffer || ArrayBuffer.isView(v)
    ? { $bin: [...new Uint8Array(v.buffer ?? v, v.byteOffset ?? 0, v.byteLength)] }
    : Array.isArray(v)
      ? v.map(show)
      : v !== null && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, show(x)]))
        : v;

const cases = {
  none: [],
  one: [{ a: 1 }],
  three: [1, "two", [3]],
  null: [null],
  binary: [{ name: "f", data: Buffer.from([1, 2, 3]), list: [Buffer.from([4]), { deep: Buffer.from([5, 6]) }] }],
  binaryArgs: [Buffer.from([7]), "between", Buffer.from([8, 9])],
  keyOrder: [{ z: 1, a: 2, m: { y: 1, b: 2 } }],
};

run(async () => {
  const socket = io(url, { forceNew: true, reconnection: false, transports: [transport] });
  await new Promise((resolve) => socket.once("connect", resolve));
  for (const [name, args] of Object.entries(cases)) {
    const event = new Promise((resolve) => socket.once("echo", (...got) => resolve(got)));
    const ack = new Promise((resolve) => socket.emit("echo", ...args, (...got) => resolve(got)));
    result.cases[name] = {
      sent: JSON.stringify(show(args)),
      event: JSON.stringify(show(await event)),
      ack: JSON.stringify(show(await ack)),
    };
  }
  socket.disconnect();
});
