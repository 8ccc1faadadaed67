// Drives the chat example (examples/chat) in headless Chromium with two pages, kills and
// restarts the server, and prints one JSON line with what the pages showed. The Rust test that
// spawns it (examples/chat/tests/browser.rs) makes the assertions.
//
// usage: node chat_browser.mjs <chat binary> <port> <output folder>
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "./chromium.mjs";
import { startExample } from "./example.mjs";
import { report } from "./report.mjs";

const [binary, port, outDir] = process.argv.slice(2);
const url = `http://127.0.0.1:${port}/`;
const result = { steps: [] };
let server;
let browser;

const { finish } = report(result, 50000, async () => {
  await browser?.close();
  server?.kill("SIGKILL");
});

/** Starts the example and resolves once it printed its address. */
const startServer = () =>
  startExample(binary, { PORT: port, RUST_LOG: "chat=info,belfry=debug" }, `chat on http://127.0.0.1:${port}`);

const step = (name) => result.steps.push(name);
const texts = (page, selector) => page.locator(selector).allTextContents();

async function enter(page, nick) {
  await page.goto(url);
  await page.fill("#nick", nick);
  await page.click("#login-form button");
  await page.waitForSelector("#app:not([hidden])");
}

async function openRoom(page, room) {
  await page.click(`#rooms li[data-room="${room}"] button`);
  await page.waitForSelector(`#rooms li.current.joined[data-room="${room}"]`);
}

/** Waits until the member list of the room on screen shows exactly `names`. */
async function membersAre(page, names) {
  await page.waitForFunction(
    (expected) =>
      JSON.stringify([...document.querySelectorAll("#users li")].map((li) => li.textContent)) ===
      JSON.stringify(expected),
    names,
  );
  return texts(page, "#users li");
}

/** Waits for a message from `from` with `text` in `room` and returns its classes. */
async function messageSeen(page, room, from, text) {
  const item = page
    .locator(`ol.messages[data-room="${room}"] li.message[data-from="${from}"]`)
    .filter({ hasText: text });
  await item.waitFor();
  return item.getAttribute("class");
}

try {
  mkdirSync(outDir, { recursive: true });
  server = await startServer();
  browser = await launchChromium();
  // Two separate browser contexts: two people.
  const alice = await (await browser.newContext({ viewport: { width: 1000, height: 640 } })).newPage();
  const bob = await (await browser.newContext({ viewport: { width: 1000, height: 640 } })).newPage();

  step("bundle");
  const bundle = await alice.request.get(`${url}socket.io/socket.io.min.js`);
  result.bundle = { status: bundle.status(), etag: bundle.headers().etag ?? null };

  step("enter");
  await enter(alice, "alice");
  await enter(bob, "bob");
  // Both start in #general; then both open #rust.
  result.firstRoom = await alice.locator("#rooms li.current").getAttribute("data-room");
  await openRoom(alice, "rust");
  await openRoom(bob, "rust");
  step("members");
  result.aliceMembers = await membersAre(alice, ["alice (you)", "bob"]);
  result.bobMembers = await membersAre(bob, ["alice", "bob (you)"]);

  step("typing");
  await alice.type("#text", "hello bob", { delay: 20 });
  await bob.waitForFunction(() => document.querySelector("#typing").textContent.includes("alice"));
  result.bobTyping = await bob.textContent("#typing");

  step("messages");
  await alice.press("#text", "Enter");
  result.bobSawAlice = await messageSeen(bob, "rust", "alice", "hello bob");
  await alice.waitForSelector('li.message.mine.delivered:has-text("hello bob")');
  result.aliceTick = await alice.textContent('li.message.mine:has-text("hello bob") .tick');
  await bob.fill("#text", "hi alice!");
  await bob.press("#text", "Enter");
  result.aliceSawBob = await messageSeen(alice, "rust", "bob", "hi alice!");
  // Bob's message did not leak into #general.
  result.generalOnAlice = await texts(alice, 'ol.messages[data-room="general"] li.message .text');

  step("image");
  const png = await alice.evaluate(() => {
    const canvas = document.createElement("canvas");
    canvas.width = 48;
    canvas.height = 32;
    const context = canvas.getContext("2d");
    context.fillStyle = "#5b6cf0";
    context.fillRect(0, 0, 48, 32);
    context.fillStyle = "#f0b35b";
    context.fillRect(8, 8, 16, 16);
    return canvas.toDataURL("image/png").split(",")[1];
  });
  await alice.setInputFiles("#image", {
    name: "square.png",
    mimeType: "image/png",
    buffer: Buffer.from(png, "base64"),
  });
  const picture = bob.locator('ol.messages[data-room="rust"] li.message.image[data-from="alice"] img');
  await picture.waitFor();
  await bob.waitForFunction(
    () => document.querySelector('li.message.image[data-from="alice"] img')?.naturalWidth > 0,
  );
  result.bobImage = await picture.evaluate((img) => ({
    width: img.naturalWidth,
    height: img.naturalHeight,
    alt: img.alt,
  }));
  await alice.waitForSelector("li.message.image.mine.delivered");
  result.screenshot = join(outDir, "chat.png");
  await alice.screenshot({ path: result.screenshot });

  step("kill");
  server.kill("SIGKILL");
  await Promise.all([alice, bob].map((page) => page.waitForSelector("#banner:not([hidden])")));
  result.bannerWhileDown = await alice.textContent("#banner");
  result.composerDisabledWhileDown = await alice.isDisabled("#text");

  step("restart");
  server = await startServer();
  await Promise.all([alice, bob].map((page) => page.waitForSelector("#banner[hidden]", { state: "attached", timeout: 20000 })));
  step("rejoined");
  // Both pages joined their rooms again by themselves; the member list is back.
  result.aliceMembersAfter = await membersAre(alice, ["alice (you)", "bob"]);
  await bob.fill("#text", "back again");
  await bob.press("#text", "Enter");
  result.aliceSawAfterRestart = await messageSeen(alice, "rust", "bob", "back again");
  result.aliceMessages = await texts(alice, 'ol.messages[data-room="rust"] li.message .text');
  result.screenshotAfterRestart = join(outDir, "chat-after-restart.png");
  await alice.screenshot({ path: result.screenshotAfterRestart });
  step("done");
  await finish(0);
} catch (error) {
  result.error = String(error?.stack ?? error);
  await finish(1);
}
