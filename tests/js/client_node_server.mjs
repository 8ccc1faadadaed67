// A Node socket.io 4.8 server for the Rust client's tests (tests/tests/client.rs), doing what the
// Belfry server of those tests does: "welcome" with the socket id on connection; "echo" sends the
// arguments back; "ack" answers with them; "ask" asks the client a question (an emit with ack)
// and sends its answer back as "answer"; "auth?" answers the handshake's auth; "transport?" answers
// the name of the connection's transport; "conn?" the id of its Engine.IO connection; "bye" disconnects
// the socket; "silent" (with an ack) is never answered; "drop" closes its connection 50 ms later (a transport close: the client reconnects and, with
// connection state recovery on, recovers) and broadcasts "news" "missed" 100 ms later; "news"
// broadcasts its argument. Namespace "/refused" refuses every socket with
// `Error("not authorized")`, data {code: 42}. Listens on the port given as an argument (a free one
// without); with the argument `msgpack`, uses socket.io-msgpack-parser; with
// `tls=<dir>`, serves HTTPS with <dir>/server.key and <dir>/server.crt; with `ping=<ms>`, pings
// every <ms> and waits <ms> for the pong; with `keepalive=<ms>`, closes idle HTTP connections
// after <ms>; and prints {"port": N}.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const args = process.argv.slice(2);
const tls = args.find((arg) => arg.startsWith("tls="))?.slice(4);
const http = tls
  ? createTlsServer({ key: readFileSync(`${tls}/server.key`), cert: readFileSync(`${tls}/server.crt`) })
  : createServer();
const ping = args.find((arg) => arg.startsWith("ping="))?.slice(5);
const keepAlive = args.find((arg) => arg.startsWith("keepalive="))?.slice(10);
if (keepAlive) http.keepAliveTimeout = Number(keepAlive);
const io = new Server(http, {
  connectionStateRecovery: {},
  ...(ping ? { pingInterval: Number(ping), pingTimeout: Number(ping) } : {}),
  ...(args.includes("msgpack") ? { parser: msgpackParser } : {}),
});
io.of("/refused").use((socket, next) => {
  const error = new Error("not authorized");
  error.data = { code: 42 };
  next(error);
});
// "/admin" answers "conn?", "auth?" and "query?" (the handshake's query) as "/" does, and echoes
// "echo".
io.of("/admin").on("connection", (socket) => {
  socket.on("conn?", (ack) => ack(socket.conn.id));
  socket.on("auth?", (ack) => ack(socket.handshake.auth));
  socket.on("echo", (...args) => socket.emit("echo", ...args));
  socket.on("query?", (ack) => ack(socket.handshake.query));
});
// For retries: every delivery of "flaky", "fine", "never" and "dropme" is logged as [event, arg,
// whether it came with an ack]; "log?" answers the log. "flaky" is acknowledged (`<arg>-ok`) only
// on every second delivery of its argument, "fine" always, "never" never; "dropme" closes the
// connection (50 ms later) on the first delivery of its argument and is acknowledged after.
const log = [];
const deliveries = new Map();
const delivered = (arg) => {
  const n = (deliveries.get(arg) ?? 0) + 1;
  deliveries.set(arg, n);
  return n;
};
io.on("connection", (socket) => {
  for (const event of ["flaky", "fine", "never", "dropme"]) {
    socket.on(event, (arg, ack) => {
      log.push([event, arg, typeof ack === "function"]);
      const n = delivered(arg);
      if (event === "flaky" && n % 2 === 0) ack(`${arg}-ok`);
      if (event === "fine") ack(`${arg}-ok`);
      if (event === "dropme" && n === 1) setTimeout(() => socket.conn.close(), 50);
      if (event === "dropme" && n > 1) ack(`${arg}-ok`);
    });
  }
  socket.on("log?", (ack) => ack(log));
  socket.emit("welcome", socket.id);
  socket.on("echo", (...args) => socket.emit("echo", ...args));
  socket.on("ack", (...args) => args.pop()(...args));
  socket.on("ask", () => {
    socket.timeout(5000).emit("question", "q?", (error, answer) =>
      socket.emit("answer", error ? "no answer" : answer),
    );
  });
  socket.on("auth?", (ack) => ack(socket.handshake.auth));
  socket.on("transport?", (ack) => ack(socket.conn.transport.name));
  socket.on("conn?", (ack) => ack(socket.conn.id));
  socket.on("query?", (ack) => ack(socket.handshake.query));
  socket.on("silent", () => {});
  socket.on("bye", () => socket.disconnect());
  socket.on("drop", () => {
    // After the request that brought "drop" (a polling POST) is answered: closing during it
    // would cut that request, a transport error rather than a close.
    setTimeout(() => {
      socket.conn.close();
      setTimeout(() => io.emit("news", "missed"), 100);
    }, 50);
  });
  socket.on("news", (text) => io.emit("news", text));
});
http.listen(Number(args.find((arg) => /^\d+$/.test(arg)) ?? 0), "127.0.0.1", () => console.log(JSON.stringify({ port: http.address().port })));
