// Two sockets of one connection (namespaces <namespace> and /other): the first writes `count`
// events with acks at once, then the second asks `probe` with an ack, behind them on the wire;
// waits for every ack (the server decides when its handlers answer). Prints one JSON line: how
// many acks came, in which order, and how many came before the probe's.
//
// usage: node sio_flood.mjs <url> <namespace> <transport: websocket|polling> <event> <count>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url, ns, transport, event, count] = process.argv.slice(2);
const result = {};
const { run } = report(result, 50000);
const connected = (socket) => new Promise((resolve) => socket.once("connect", resolve));

run(async () => {
  const socket = io(url + ns, { forceNew: true, reconnection: false, transports: [transport] });
  const other = socket.io.socket("/other");
  other.connect();
  await Promise.all([connected(socket), connected(other)]);
  const acks = [];
  const all = [];
  for (let i = 0; i < Number(count); i++) {
    all.push(socket.timeout(45000).emitWithAck(event, i).then((v) => acks.push(v)));
  }
  const probe = other.timeout(45000).emitWithAck("probe").then(() => acks.length);
  await Promise.all(all);
  result.acksBeforeProbe = await probe;
  result.acks = acks.length;
  result.inOrder = acks.every((v, i) => v === i);
  socket.disconnect();
});
