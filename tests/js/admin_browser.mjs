// The Admin UI example (examples/admin-ui) in headless Chromium: three socket.io-client sockets
// join rooms, the official Admin UI page (served by the example from the @socket.io/admin-ui npm
// package) refuses a wrong password, logs in, and lists the sockets and their rooms. Prints one
// JSON line; the Rust test (examples/admin-ui/tests/browser.rs) makes the assertions.
//
// usage: node admin_browser.mjs <admin-ui binary> <port> <output folder>
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { io } from "socket.io-client";
import { launchChromium } from "./chromium.mjs";
import { startExample } from "./example.mjs";
import { report } from "./report.mjs";

const [binary, port, outDir] = process.argv.slice(2);
const origin = `http://127.0.0.1:${port}`;
const result = { steps: [] };
let server;
let browser;
const clients = [];

const { run } = report(result, 50000, async () => {
  clients.forEach((c) => c.close());
  await browser?.close();
  server?.kill("SIGKILL");
});
const step = (name) => result.steps.push(name);

/** Starts the example and resolves once it printed its address. */
const startServer = () =>
  startExample(binary, { PORT: port, RUST_LOG: "belfry=info" }, `admin-ui on ${origin}/admin-ui/`);

/** Connects a client to `/` that joins `room`; resolves with its socket id. */
function client(room) {
  const socket = io(origin, { forceNew: true, auth: { room } });
  clients.push(socket);
  return new Promise((resolve) => socket.once("connect", () => resolve(socket.id)));
}

/** The first cells of the visible table rows (a view leaving stays in the page, hidden). */
function visibleFirstCells() {
  return [...document.querySelectorAll("tbody tr td:first-child")]
    .filter((td) => td.offsetParent !== null)
    .map((td) => td.textContent.trim());
}

/** The first cells of the visible table rows, once `expected` are all there. */
async function rowsInclude(page, expected) {
  await page.waitForFunction(
    ([names, cells]) => names.every((name) => eval(cells)().includes(name)),
    [expected, `(${visibleFirstCells})`],
    { timeout: 15000 },
  );
  const cells = await page.evaluate(visibleFirstCells);
  await page.waitForTimeout(500); // the view's transition, for the screenshot
  return cells;
}

async function login(page, password) {
  await page.getByLabel("Server URL").fill(origin);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Connect" }).click();
}

async function main() {
  mkdirSync(outDir, { recursive: true });
  server = await startServer();
  result.pid = server.pid;
  step("server started");
  const ids = await Promise.all([client("lobby"), client("lobby"), client("vip")]);
  result.ids = ids;
  step("clients connected");

  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // The page asks fonts and icons of CDNs this machine cannot reach.
  await page.route(/googleapis|jsdelivr|gstatic/, (route) => route.abort());
  await page.goto(`${origin}/admin-ui/`);
  step("page loaded");

  await login(page, "wrong");
  await page.locator(".v-dialog .red--text").waitFor({ timeout: 15000 });
  result.refused = (await page.locator(".v-dialog .red--text").textContent()).trim();
  step("wrong password refused");

  await page.getByLabel("Password").fill("changeit");
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator(".v-dialog").waitFor({ state: "hidden", timeout: 15000 });
  step("logged in");
  await page.screenshot({ path: join(outDir, "dashboard.png") });

  await page.goto(`${origin}/admin-ui/#/sockets/`);
  result.sockets = await rowsInclude(page, ids);
  await page.screenshot({ path: join(outDir, "sockets.png") });
  step("sockets listed");

  await page.goto(`${origin}/admin-ui/#/rooms/`);
  result.rooms = await rowsInclude(page, ["lobby", "vip"]);
  await page.screenshot({ path: join(outDir, "rooms.png") });
  step("rooms listed");

  // The room page lists its members.
  await page.goto(`${origin}/admin-ui/#/n/%2F/rooms/lobby`);
  result.lobby = await rowsInclude(page, ids.slice(0, 2));
  await page.screenshot({ path: join(outDir, "lobby.png") });
  step("lobby members listed");

  await page.goto(`${origin}/admin-ui/#/servers/`);
  // The server's row, once its stats arrived: id, host, pid, uptime, clients, last ping, status.
  const serverRows = () =>
    [...document.querySelectorAll("tbody tr")]
      .filter((tr) => tr.offsetParent !== null)
      .map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()));
  await page.waitForFunction(
    (rows) => eval(rows)().some((cells) => cells.includes("Healthy")),
    `(${serverRows})`,
    { timeout: 15000 },
  );
  result.servers = await page.evaluate(serverRows);
  await page.screenshot({ path: join(outDir, "servers.png") });
  step("server listed");
}

run(main);
