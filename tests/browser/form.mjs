// The generic challenge `xak-form` in the flow page, run by tests/tests/browser.rs:
// a wrong code shows the stage's error under the field, the named "resend" button
// posts its value without the required field, the right code finishes the flow;
// a component the page does not know is named on the page.
// Env: BASE_URL, SHOTS, CHROMIUM. Prints one JSON line; exits non-zero on failure.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.env.BASE_URL;
const shots = process.env.SHOTS;
fs.mkdirSync(shots, { recursive: true });
const TIMEOUT = 20000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const shot = (page, name) => page.screenshot({ path: path.join(shots, name), fullPage: true });

const result = {};
const csp = [];
try {
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => { if (m.text().includes("Content Security Policy")) csp.push(m.text()); });
  await page.goto(`${base}/if/flow/form-demo/`);
  await page.getByRole("heading", { name: "Enter your code" }).waitFor({ timeout: TIMEOUT });
  result.text_shown = await page.getByText("We sent a code to your address.").count() > 0;
  result.code_autocomplete = await page.getByLabel("Code").getAttribute("autocomplete");
  await shot(page, "form-1-empty.png");
  await page.getByRole("button", { name: "Send a new code" }).click();
  await page.getByText("A new code is on its way.").waitFor({ timeout: TIMEOUT });
  await page.getByLabel("Code").fill("000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That code is not valid.").waitFor({ timeout: TIMEOUT });
  await shot(page, "form-2-wrong.png");
  await page.getByLabel("Code").fill("123456");
  await page.getByLabel("Remember this browser").check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#done").waitFor({ timeout: TIMEOUT });
  result.finished = true;

  await page.goto(`${base}/if/flow/mystery/`);
  const unknown = page.getByText('This page cannot show the step "x-mystery"');
  await unknown.waitFor({ timeout: TIMEOUT });
  result.unknown_named = true;
  await shot(page, "form-3-unknown.png");
} finally {
  await browser.close();
}
result.csp_violations = csp;
console.log(JSON.stringify(result));
