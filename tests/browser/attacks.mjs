// Attacks on the flow page in headless Chromium, run by tests/tests/browser.rs:
// 1. an open redirect through `next` with a TAB (`/\t/evil.test/phish`), carried
//    by a genuine recovery mail;
// 2. session fixation: an attacker's session cookie planted in the victim's browser
//    before the victim signs in.
// Env: BASE_URL, MAILDIR, SHOTS, CHROMIUM, REDIRECT_VICTIM, FIXATION_VICTIM.
// Prints one JSON line with what it saw; exits non-zero on any failure.
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
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

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
  return out;
}

// The newest mail to `to`, waiting for it.
async function mailTo(to) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    const hits = mailFiles()
      .map((f) => fs.readFileSync(f, "utf8"))
      .filter((raw) => raw.includes(`<${to}>`) || raw.includes(`To: ${to}`));
    if (hits.length) return hits[hits.length - 1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to}`);
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

// Recovery in `page`'s browser, from `start` (the recovery page, maybe with a
// query) to a new password; the page ends on whatever the flow's end leads to.
async function recover(page, start, email, tag) {
  await page.goto(start);
  await page.getByLabel("Email or username").fill(email);
  await page.keyboard.press("Enter");
  await page.getByText("Check your Inbox for a verification email.").waitFor({ timeout: TIMEOUT });
  const link = linkOf(await mailTo(email));
  await page.goto(link);
  await page.getByText("Continue to confirm this email address.").waitFor({ timeout: TIMEOUT });
  await page.keyboard.press("Enter");
  await page.getByLabel("New password", { exact: true }).waitFor({ timeout: TIMEOUT });
  await page.getByLabel("New password", { exact: true }).fill("attack test 9 pass");
  await page.getByLabel("New password (repeat)", { exact: true }).fill("attack test 9 pass");
  await shot(page, `a-${tag}-password.png`);
  await page.keyboard.press("Enter");
  await page.getByText("Successfully logged in!").waitFor({ timeout: TIMEOUT });
  return link;
}

const result = {};
// The page must run under its own Content-Security-Policy without a violation.
const csp = [];
const watch = (page) => page.on("console", (m) => {
  if (m.text().includes("Content Security Policy")) csp.push(m.text());
});
try {
  // 1. Open redirect.
  const victim = await browser.newContext();
  const v = await victim.newPage();
  watch(v);
  const hosts = [];
  v.on("request", (r) => hosts.push(new URL(r.url()).host));
  const crafted = `${base}/if/flow/recover/?next=%2F%09%2Fevil.test%2Fphish`;
  const link = await recover(v, crafted, process.env.REDIRECT_VICTIM, "redirect");
  result.link_carries_next = link.includes("next=");
  result.invalid_next_shown = await v.getByText("Invalid next URL").count() > 0;
  await shot(v, "a-redirect-end.png");
  await v.waitForURL(`${base}/`, { timeout: TIMEOUT });
  result.redirect_landed = v.url();
  result.evil_requested = hosts.some((h) => h.includes("evil.test"));

  // 2. Session fixation.
  const attacker = await browser.newContext();
  const a = await attacker.newPage();
  watch(a);
  await a.goto(`${base}/if/flow/recover/`);
  await a.getByLabel("Email or username").fill("nobody@example.com");
  await a.keyboard.press("Enter");
  await a.getByText("Check your Inbox for a verification email.").waitFor({ timeout: TIMEOUT });
  await a.goto(`${base}/flows/-/cancel/`);
  const planted = (await attacker.cookies()).filter((c) => c.name.startsWith("ih_"));
  result.planted = planted.map((c) => c.name).sort();
  const target = await browser.newContext();
  await target.addCookies(planted);
  const t = await target.newPage();
  watch(t);
  await recover(t, `${base}/if/flow/recover/`, process.env.FIXATION_VICTIM, "fixation");
  const after = (await target.cookies()).find((c) => c.name === "ih_session");
  result.session_rotated = !!after && after.value !== planted.find((c) => c.name === "ih_session").value;
  // The attacker, still holding the planted cookies, tries to change the email.
  await a.goto(`${base}/if/flow/email-change/`);
  await a.getByLabel("New email address").fill("attacker@evil.test");
  await a.keyboard.press("Enter");
  await a.locator("#stage p").first().waitFor({ timeout: TIMEOUT });
  await a.waitForTimeout(300);
  await shot(a, "a-fixation-attacker.png");
  result.attacker_sees = await a.locator("#stage").innerText();
  result.attacker_messages = await a.locator("#messages").innerText();
  result.csp_violations = csp;
  result.ok = true;
} catch (e) {
  result.ok = false;
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
