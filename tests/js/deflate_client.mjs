// socket.io-client over WebSocket (directly, or after the polling upgrade) against a Belfry
// server with permessage-deflate: the extension its `ws` negotiated, and a 20,000-character
// message that goes out compressed (the client's threshold is 1024) and comes back compressed.
// Prints one JSON line; the Rust test (tests/tests/ws_deflate.rs) makes the assertions.
//
// usage: node deflate_client.mjs <base-url> <websocket|upgrade>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url, mode] = process.argv.slice(2);
const result = {};
const { run } = report(result);
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));

async function main() {
  const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
  const socket = io(url, { forceNew: true, reconnection: false, transports });
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
  socket.close();
}

run(main);
