// Opens the mails `host-harness preview` wrote (run by tests/tests/browser.rs) in
// headless Chromium, screenshots each and reports what a reader sees.
// Env: PREVIEWS (a directory of .html files), SHOTS, CHROMIUM. Prints one JSON line:
// { "<file>": { lang, heading, button, color } }.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const dir = process.env.PREVIEWS;
const shots = process.env.SHOTS;
fs.mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const result = {};
try {
  const page = await (await browser.newContext()).newPage();
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".html")).sort()) {
    await page.goto("file://" + path.join(dir, file));
    await page.screenshot({ path: path.join(shots, "preview-" + file + ".png"), fullPage: true });
    result[file] = await page.evaluate(() => {
      const button = document.querySelector("#confirm");
      return {
        lang: document.documentElement.lang,
        heading: document.querySelector("h1")?.textContent ?? "",
        button: button?.textContent ?? "",
        color: button ? getComputedStyle(button).backgroundColor : "",
      };
    });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
