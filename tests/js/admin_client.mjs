// The Admin UI's protocol, spoken by socket.io-client as the UI speaks it (namespace /admin, basic
// auth, its commands), against a Belfry server instrumented with `belfry::admin`. Prints one
// JSON line; the Rust test (tests/tests/sio_admin.rs) makes the assertions.
//
// usage: node admin_client.mjs <base-url>
import { io } from "socket.io-client";
import { report } from "./report.mjs";

const [url] = process.argv.slice(2);
const result = { steps: [] };
const { run } = report(result);
const step = (name) => result.steps.push(name);
const once = (socket, event) => new Promise((resolve) => socket.once(event, (...args) => resolve(args)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const admin = (auth) => io(`${url}/admin`, { forceNew: true, reconnection: false, auth });
const user = (room) => io(url, { forceNew: true, reconnection: false, auth: { room } });

const LIVE = [
  "socket_connected",
  "socket_disconnected",
  "socket_updated",
  "room_joined",
  "room_left",
  "event_received",
  "event_sent",
];

async function main() {
  const bad = admin({ username: "admin", password: "nope" });
  result.refused = (await once(bad, "connect_error"))[0].message;
  step("wrong password refused");

  const u1 = user("lobby");
  await once(u1, "connect");

  // The session id comes from the middleware, before CONNECT; then config and all_sockets.
  const a = admin({ username: "admin", password: "changeit" });
  const order = [];
  a.on("session", (id) => {
    order.push("session");
    result.sessionId = id;
  });
  a.on("connect", () => order.push("connect"));
  const config = once(a, "config");
  const all = once(a, "all_sockets");
  result.features = (await config)[0].supportedFeatures;
  result.allSockets = (await all)[0];
  result.order = order;
  result.u1 = u1.id;
  step("admin connected");

  const live = [];
  for (const event of LIVE) a.on(event, (...args) => live.push([event, ...args]));

  const u2 = user("vip");
  await once(u2, "connect");
  result.u2 = u2.id;
  u2.emit("say", "hi");
  await once(u2, "said");
  await u2.emitWithAck("set-data");
  step("live events");

  // The UI's commands.
  a.emit("join", "/", "extra", u1.id);
  const hello = once(u1, "hello");
  a.emit("emit", "/", u1.id, "hello", 1, "two");
  result.hello = await hello;
  a.emit("leave", "/", "extra", u1.id);
  const gone = once(u2, "disconnect");
  a.emit("_disconnect", "/", false, u2.id);
  result.u2Reason = (await gone)[0];
  step("commands");

  result.stats = (await once(a, "server_stats"))[0];
  step("stats");

  // Back with the session id only.
  const again = admin({ sessionId: result.sessionId });
  await once(again, "connect");
  result.sessionReused = again.connected;
  await sleep(200);
  result.live = live;
  [bad, a, again, u1, u2].forEach((s) => s.close());
}

run(main);
