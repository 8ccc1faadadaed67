// socket.io-client over WebSocket (directly, or after the polling upgrade) against a Belfry
// server with permessage-deflate: the extension its `ws` negotiated, and a 20,000-character
// message that goes out compressed (the client's threshold is 1024) and comes back compressed.
// Prints one JSON line; the Rust test (tests/tests/ws_deflate.rs) makes the assertions.
//
// With `small-window`, the client's `ws` asks for a server window of 2^10 bytes
// (`server_max_window_bits=10`), and a 500-character message is echoed too.
//
// usage: node deflate_client.mjs <base-url> <websocket|upgrade|small-window>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url, mode] = process.argv.slice(2);
const result = {};
const { run } = report(result);
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));

async function main() {
  const transports = mode === "upgrade" ? ["polling", "websocket"] : ["websocket"];
  // `ws` checks the server's answer to its offer: a connection made means it accepted it.
  const small = mode === "small-window" ? { perMessageDeflate: { threshold: 256, serverMaxWindowBits: 10 } } : {};
  const socket = io(url, { forceNew: true, reconnection: false, transports, ...small });
  await once(socket, "connect");
  if (socket.io.engine.transport.name !== "websocket") {
    await once(socket.io.engine, "upgrade");
  }
  result.transport = socket.io.engine.transport.name;
  result.extensions = socket.io.engine.transport.ws.extensions;
  const text = "lorem ipsum dolor sit amet ".repeat(800).slice(0, 20000);
  socket.emit("echo", text);
  const [echo] = await once(socket, "echo");
  result.echoLength = echo.length;
  result.echoIntact = echo === text;
  if (mode === "small-window") {
    const short = "x".repeat(500);
    socket.emit("echo", short);
    result.shortIntact = (await once(socket, "echo"))[0] === short;
  }
  socket.close();
}

run(main);
