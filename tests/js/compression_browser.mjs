// Headless Chromium, with the official browser client over long-polling, against a Belfry page
// that sends a 3000-character message: reports the Content-Encoding of the polling responses
// and what the page received. Prints one JSON line; the Rust test
// (tests/tests/sio_compression.rs) makes the assertions.
//
// usage: node compression_browser.mjs <page url>
import { launchChromium } from "./chromium.mjs";
import { report } from "./report.mjs";

const [url] = process.argv.slice(2);
const result = { steps: [], encodings: [] };
let browser;
const { run } = report(result, 30000, async () => browser?.close());

async function main() {
  browser = await launchChromium();
  const page = await browser.newPage();
  page.on("response", (response) => {
    if (response.url().includes("/socket.io/?") && response.request().method() === "GET") {
      result.encodings.push(response.headers()["content-encoding"] ?? null);
    }
  });
  await page.goto(url);
  result.steps.push("page loaded");
  await page.waitForFunction(() => window.received !== undefined, null, { timeout: 15000 });
  result.received = await page.evaluate(() => window.received);
}

run(main);
