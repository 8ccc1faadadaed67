// The Node side of the differential wire tests (tests/tests/differential.rs, run by
// tests/js/differential.mjs): socket.io 4.8 servers with the same handlers as the Belfry servers
// of that test. Three servers, each on its own port of 127.0.0.1:
//   main    default options (pingInterval 25 s, pingTimeout 20 s, httpCompression 1024, ...)
//   fast    pingInterval 300 ms, pingTimeout 200 ms (heartbeat cases); HTTP keepAliveTimeout
//           500 ms, headersTimeout 1 s (http cases)
//   doomed  default options, shut down by the "shutdown" event (io.close())
// Prints {"main": url, "fast": url, "doomed": url} once all listen, then runs until killed.
//
// Handlers of "/" (the Belfry test installs the same ones):
//   echo (...args)            emits "echo" with the same arguments
//   echo-ack (...args, ack)   answers the ack with the same arguments
//   ack-null (ack)            answers the ack with a single null
//   message-with-ack (d, ack) answers the ack with d
//   later (ms, ack)           waits `ms` milliseconds, then answers the ack with ms
//   shape (kind, ack)         emits "x" with the argument shape `kind` (see SHAPES), then acks "done"
//   whoami (ack)              answers socket.handshake
//   kick                      socket.disconnect()       (leaves the namespace)
//   bye                       socket.disconnect(true)   (closes the connection)
//   big                       emits "big" with a 5000-character string
//   reason-of (id, ack)       answers the disconnect reason seen for socket `id` (or null)
//   shutdown                  io.close()
// "/guarded": a middleware that lets in auth {token: "ok"}, and refuses anything else with
// Error("not authorized") and data {code: 401}.
//
// usage: node diff_node_server.mjs
import { createServer } from "node:http";
import { Server } from "socket.io";

const SHAPES = {
  none: (s) => s.emit("x"),
  null: (s) => s.emit("x", null),
  several: (s) => s.emit("x", 1, "two", { three: 3 }, [4], true),
  text: (s) => s.emit("x", 'é\n"\\/\u0001\u2028😀'),
  numbers: (s) => s.emit("x", 0, -1, 1.5, 2 ** 53),
  "nested-binary": (s) =>
    s.emit("x", { a: Buffer.from([1, 2]), b: [Buffer.from([3]), { c: Buffer.from([4]) }] }),
  "ordered-binary": (s) => s.emit("x", { tag: "t", text: "hello", n: 1, bin: Buffer.from([5, 6]) }),
  "binary-args": (s) => s.emit("x", Buffer.from([7]), "after", Buffer.from([])),
};

function start(options, httpOptions = {}) {
  const http = createServer(httpOptions);
  if (httpOptions.keepAliveTimeout) http.keepAliveTimeout = httpOptions.keepAliveTimeout;
  const io = new Server(http, options);
  const reasons = new Map();
  io.on("connection", (socket) => {
    socket.on("disconnect", (reason) => reasons.set(socket.id, reason));
    socket.on("echo", (...args) => socket.emit("echo", ...args));
    socket.on("echo-ack", (...args) => {
      const ack = args.pop();
      ack(...args);
    });
    socket.on("ack-null", (ack) => ack(null));
    socket.on("message-with-ack", (data, ack) => ack(data));
    socket.on("later", async (ms, ack) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      ack(ms);
    });
    socket.on("shape", (kind, ack) => {
      SHAPES[kind](socket);
      ack("done");
    });
    socket.on("whoami", (ack) => ack(socket.handshake));
    socket.on("kick", () => socket.disconnect());
    socket.on("bye", () => socket.disconnect(true));
    socket.on("big", () => socket.emit("big", "x".repeat(5000)));
    socket.on("reason-of", (id, ack) => ack(reasons.get(id) ?? null));
    socket.on("shutdown", () => io.close());
  });
  const guarded = io.of("/guarded");
  guarded.use((socket, next) => {
    if (socket.handshake.auth && socket.handshake.auth.token === "ok") return next();
    const error = new Error("not authorized");
    error.data = { code: 401 };
    next(error);
  });
  guarded.on("connection", () => {});
  return new Promise((resolve) =>
    http.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${http.address().port}`)),
  );
}

const [main, fast, doomed] = await Promise.all([
  start({}),
  // The HTTP limits short, for the http.* cases (Belfry's fast server: `belfry::serve` with a
  // 500 ms keep-alive timeout); checked every 100 ms.
  start(
    { pingInterval: 300, pingTimeout: 200 },
    { keepAliveTimeout: 500, headersTimeout: 1000, connectionsCheckingInterval: 100 },
  ),
  start({}),
]);
console.log(JSON.stringify({ main, fast, doomed }));
