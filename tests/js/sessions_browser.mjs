// Opens the cross-origin sessions page (tests/js/sessions_page.html) from an allowed origin and
// from another one, and prints one JSON line with what each saw. The Rust test that spawns it
// (examples/axum-sessions/tests/cross_origin.rs) makes the assertions.
//
// usage: node sessions_browser.mjs <api url> <allowed page url> <other page url>
import { launchChromium } from "./chromium.mjs";

const [api, allowed, other] = process.argv.slice(2);
const result = {};
const browser = await launchChromium();
try {
  for (const [name, origin] of [["allowed", allowed], ["other", other]]) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${origin}/?api=${encodeURIComponent(api)}`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 20000 });
    result[name] = await page.evaluate(() => window.result);
  }
} catch (error) {
  result.error = String(error?.stack ?? error);
}
await browser.close();
console.log(JSON.stringify(result));
