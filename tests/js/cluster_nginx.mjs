// Socket.IO clients through nginx in front of two Belfry nodes (examples/cluster): which node
// each lands on, whether its requests stay there, whether WebSocket upgrades pass, and who
// receives the broadcasts. Prints one JSON line; the Rust test (examples/cluster/tests/nginx.rs)
// makes the assertions.
//
// usage: node cluster_nginx.mjs <nginx url>
import { io } from "socket.io-client";

const [url] = process.argv.slice(2);
const result = { clients: {}, received: {}, steps: [] };
setTimeout(() => {
  result.error = `timeout after ${result.steps.at(-1)}`;
  console.log(JSON.stringify(result));
  process.exit(2);
}, 40000);

const sockets = {};
// Resolves once the node said welcome; `withCredentials` keeps the cookies (in Node.js too).
const connect = (name, opts) =>
  new Promise((resolve, reject) => {
    const socket = io(url, { forceNew: true, reconnection: false, withCredentials: true, ...opts });
    result.received[name] = [];
    socket.on("said", ({ node, text }) => result.received[name].push(`${node}:${text}`));
    socket.on("welcome", ({ node }) => {
      sockets[name] = socket;
      result.clients[name] = { welcome: node, whoami: [] };
      resolve(socket);
    });
    socket.on("connect_error", reject);
  });
const whoami = async (name, times) => {
  for (let i = 0; i < times; i++) {
    result.clients[name].whoami.push(await sockets[name].timeout(5000).emitWithAck("whoami"));
  }
};
const step = async (name, action) => {
  result.steps.push(name);
  await action();
};

try {
  await step("polling clients", async () => {
    for (const name of ["p1", "p2", "p3", "p4"]) {
      await connect(name, { transports: ["polling"] });
      await whoami(name, 5);
      result.clients[name].transport = sockets[name].io.engine.transport.name;
    }
  });
  await step("upgrading clients", async () => {
    for (const name of ["u1", "u2"]) {
      const socket = await connect(name, {});
      if (socket.io.engine.transport.name !== "websocket") {
        await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
      }
      result.clients[name].transport = socket.io.engine.transport.name;
      await whoami(name, 3);
    }
  });
  await step("websocket-only client", async () => {
    await connect("w1", { transports: ["websocket"], withCredentials: false });
    result.clients.w1.transport = sockets.w1.io.engine.transport.name;
    await whoami("w1", 3);
  });
  await step("polling without cookies", async () => {
    result.withoutCookies = await new Promise((resolve) => {
      const socket = io(url, {
        forceNew: true,
        reconnection: false,
        withCredentials: false,
        transports: ["polling"],
      });
      socket.on("connect_error", (error) => resolve(`connect_error: ${error.message}`));
      socket.on("welcome", async () => {
        // Connected: its next requests still alternate between the nodes.
        try {
          await socket.timeout(3000).emitWithAck("whoami");
          await socket.timeout(3000).emitWithAck("whoami");
          resolve("served");
        } catch (error) {
          resolve(`failed: ${error.message}`);
        }
      });
      socket.on("disconnect", (reason) => resolve(`disconnected: ${reason}`));
      setTimeout(() => resolve("no answer"), 8000);
    });
  });
  await step("broadcasts", async () => {
    sockets.p1.emit("say", "hello");
    sockets.w1.emit("say", "hi");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  });
  await step("count", async () => {
    result.count = await sockets.u1.timeout(8000).emitWithAck("count");
  });
  result.steps.push("done");
} catch (error) {
  result.error = String(error?.stack ?? error);
}
for (const socket of Object.values(sockets)) socket.disconnect();
console.log(JSON.stringify(result));
process.exit(0);
