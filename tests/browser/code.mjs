// The email-code example in the flow page, run by tests/tests/browser.rs: sign in
// with the code from the mail (read from the served host's mail directory), after a
// wrong one. Env: BASE_URL, MAILDIR, SHOTS, CHROMIUM, USERNAME. Prints one JSON line.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.env.BASE_URL;
const maildir = process.env.MAILDIR;
const shots = process.env.SHOTS;
fs.mkdirSync(shots, { recursive: true });
const TIMEOUT = 20000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const shot = (page, name) => page.screenshot({ path: path.join(shots, name), fullPage: true });

function files(d) {
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d, { withFileTypes: true })
    .flatMap((e) => e.isDirectory() ? files(path.join(d, e.name)) : [path.join(d, e.name)]);
}

async function mailedCode() {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    for (const f of files(maildir)) {
      const m = fs.readFileSync(f, "utf8").match(/code is (\d{6})/);
      if (m) return m[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("no code arrived");
}

const result = {};
const csp = [];
try {
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => { if (m.text().includes("Content Security Policy")) csp.push(m.text()); });
  await page.goto(`${base}/if/flow/code-signin/`);
  await page.getByLabel("Email or username").fill(process.env.USERNAME);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Enter your code" }).waitFor({ timeout: TIMEOUT });
  await shot(page, "code-1-form.png");
  const code = await mailedCode();
  await page.getByLabel("Code").fill(code === "000000" ? "111111" : "000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That code is not valid.").waitFor({ timeout: TIMEOUT });
  await shot(page, "code-2-wrong.png");
  await page.getByLabel("Code").fill(code);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#done").waitFor({ timeout: TIMEOUT });
  await shot(page, "code-3-done.png");
  result.signed_in = true;
} finally {
  await browser.close();
}
result.csp_violations = csp;
console.log(JSON.stringify(result));
