// Opens the origins page (tests/js/origins_page.html) at each of the given URLs, one browser
// context each, and prints one JSON line with what each page saw, by name. The Rust test that
// spawns it (tests/tests/engine_origins.rs) makes the assertions.
//
// usage: node origins_browser.mjs <name> <page url> [<name> <page url> ...]
import { launchChromium } from "./chromium.mjs";
import { report } from "./report.mjs";

const args = process.argv.slice(2);
const result = { steps: [] };
let browser;
const { run } = report(result, 50000, async () => browser?.close());

async function main() {
  browser = await launchChromium();
  for (let i = 0; i + 1 < args.length; i += 2) {
    const [name, url] = [args[i], args[i + 1]];
    const page = await (await browser.newContext()).newPage();
    await page.goto(url);
    result.steps.push(`${name} loaded`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30000 });
    result[name] = await page.evaluate(() => window.result);
    await page.context().close();
  }
}

run(main);
