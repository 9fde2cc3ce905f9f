// Browser end-to-end test of the flow page, run by tests/tests/browser.rs.
// Env: BASE_URL (the server), MAILDIR (the SMTP sink's Maildir), SHOTS (screenshot
// folder), CHROMIUM (browser binary, default /usr/bin/chromium).
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.env.BASE_URL;
const maildir = process.env.MAILDIR;
const shots = process.env.SHOTS;
fs.mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const TIMEOUT = 20000;

function mailFiles() {
  const out = [];
  const walk = (d) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else out.push(p);
    }
  };
  walk(maildir);
  return out.sort((x, y) => fs.statSync(x).mtimeMs - fs.statSync(y).mtimeMs);
}

async function waitMail(n) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    const files = mailFiles();
    if (files.length >= n) return fs.readFileSync(files[n - 1], "utf8");
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mail ${n} did not arrive`);
}

function linkOf(raw) {
  const text = raw.replace(/=\r?\n/g, "").replace(/=3D/g, "=");
  const m = text.match(/https?:\/\/[^\s"<>]*\/if\/flow\/[^\s"<>]*/);
  if (!m) throw new Error("no link in the mail");
  return m[0].replace(/&amp;/g, "&");
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, name), fullPage: true });
}

async function visible(page) {
  return {
    title: await page.locator("#title").innerText(),
    stage: await page.locator("#stage").innerText(),
    messages: await page.locator("#messages").innerText(),
  };
}

const result = {};
try {
  // 1. Enrollment with a fresh address, keyboard only.
  const email = `user${Date.now()}@example.com`;
  result.email = email;
  const a = await (await browser.newContext()).newPage();
  await a.goto(`${base}/if/flow/enroll/`);
  await a.getByLabel("Username", { exact: true }).fill("browser-user");
  await a.getByLabel("Name", { exact: true }).fill("Browser User");
  await a.getByLabel("Email", { exact: true }).fill(email);
  await a.getByLabel("Password", { exact: true }).fill("correct horse 42");
  await a.getByLabel("Password (repeat)", { exact: true }).fill("correct horse 42");
  await shot(a, "01-sign-up.png");
  await a.keyboard.press("Enter");
  await a.getByText("Check your Inbox for a verification email.").waitFor({ timeout: TIMEOUT });
  await shot(a, "02-check-inbox.png");

  // 2. The link from the real SMTP server, opened in another browser context.
  const link = linkOf(await waitMail(1));
  result.link_host = new URL(link).host;
  const b = await (await browser.newContext()).newPage();
  await b.goto(link);
  await b.getByText("Continue to confirm this email address.").waitFor({ timeout: TIMEOUT });
  await shot(b, "03-confirm.png");
  await b.keyboard.press("Enter"); // the Continue button has focus
  await b.getByText("Successfully verified Email.").waitFor({ timeout: TIMEOUT });
  await shot(b, "04-verified.png");
  await b.waitForURL(`${base}/`, { timeout: TIMEOUT });
  await shot(b, "05-signed-in.png");

  // 3. Recovery: an unknown address shows exactly what a known one shows.
  const recover = async (uid, tag) => {
    const p = await (await browser.newContext()).newPage();
    await p.goto(`${base}/if/flow/recover/`);
    await p.getByLabel("Email or username").fill(uid);
    await p.keyboard.press("Enter");
    await p.getByText("Check your Inbox for a verification email.").waitFor({ timeout: TIMEOUT });
    const first = await visible(p);
    await shot(p, `06-recover-${tag}.png`);
    await p.getByRole("button", { name: "Send Email again." }).click();
    await p.getByText("Email Successfully sent.").waitFor({ timeout: TIMEOUT });
    const second = await visible(p);
    await shot(p, `07-resent-${tag}.png`);
    return { first, second };
  };
  const known = await recover(email, "known");
  const unknown = await recover("nobody-" + email, "unknown");
  result.recovery_identical = JSON.stringify(known) === JSON.stringify(unknown);
  result.recovery = known;
  if (!result.recovery_identical) {
    throw new Error("recovery pages differ: " + JSON.stringify({ known, unknown }));
  }
  // 4. Recovery completed for the known address: the newest link, a new password,
  // signed in.
  const files = mailFiles();
  const resetLink = linkOf(fs.readFileSync(files[files.length - 1], "utf8"));
  const r = await (await browser.newContext()).newPage();
  await r.goto(resetLink);
  await r.getByText("Continue to confirm this email address.").waitFor({ timeout: TIMEOUT });
  await r.keyboard.press("Enter");
  await r.getByLabel("New password", { exact: true }).waitFor({ timeout: TIMEOUT });
  await r.getByLabel("New password", { exact: true }).fill("brand new secret 7");
  await r.getByLabel("New password (repeat)", { exact: true }).fill("brand new secret 7");
  await shot(r, "08-new-password.png");
  await r.keyboard.press("Enter");
  await r.getByText("Successfully logged in!").waitFor({ timeout: TIMEOUT });
  await shot(r, "09-recovered.png");
  await r.waitForURL(`${base}/`, { timeout: TIMEOUT });
  result.recovered = true;
  result.ok = true;
} catch (e) {
  result.ok = false;
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
