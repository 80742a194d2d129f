// Account recovery as a user lives it: authgraph mails a reset link to a real
// SMTP server (aiosmtpd, tests/support/smtp_sink.py), the test reads the link
// out of the received mail and opens it in Debian's Chromium, on authgraph's
// own page, types a new password and submits; the new password logs in, the
// old one does not, and the link does not work twice. The verification link
// of the signup mail confirms the address the same way. Needs the Python of
// AUTHGRAPH_TEST_SMTP_PYTHON (skipped without it unless AUTHGRAPH_TEST_REQUIRE_SMTP).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

import { launchChromium } from "./chromium.mjs";

import { freePort, startAuthgraph } from "../support/start-authgraph.mjs";

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? join(import.meta.dirname, "screenshots");
const PYTHON = process.env.AUTHGRAPH_TEST_SMTP_PYTHON;
const PASSWORD = "correct horse battery";

if (!PYTHON && process.env.AUTHGRAPH_TEST_REQUIRE_SMTP) {
  throw new Error("AUTHGRAPH_TEST_REQUIRE_SMTP is set but AUTHGRAPH_TEST_SMTP_PYTHON is not");
}


let smtp;
let mailDir;
let authgraph;
let publicUrl;
let browser;

before(async () => {
  if (!PYTHON) return;
  const smtpPort = await freePort();
  mailDir = mkdtempSync(join(tmpdir(), "authgraph-mail-"));
  smtp = spawn(PYTHON, [join(import.meta.dirname, "../support/smtp_sink.py"), String(smtpPort), mailDir], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((ok, fail) => {
    createInterface({ input: smtp.stdout }).once("line", (line) =>
      line.includes("smtp listening") ? ok() : fail(new Error(line)),
    );
    smtp.on("exit", (code) => fail(new Error(`the SMTP server exited with ${code}`)));
  });
  const apiPort = await freePort();
  publicUrl = `http://localhost:${apiPort}`;
  authgraph = await startAuthgraph({
    BIND_ADDR: `127.0.0.1:${apiPort}`,
    PUBLIC_URL: publicUrl,
    SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  authgraph?.stop();
  smtp?.kill();
});

async function gql(query, variables) {
  const response = await fetch(`${authgraph.base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

/** Waits for mail number `n` (1-based) and returns it as the SMTP server parsed it. */
async function mail(n) {
  for (let i = 0; i < 300; i += 1) {
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".json")).sort();
    if (files.length >= n) return JSON.parse(readFileSync(join(mailDir, files[n - 1]), "utf8"));
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error(`mail ${n} never arrived`);
}

const linkIn = (received, path) => {
  const link = received.text.split(/\s+/).find((word) => word.startsWith(`${publicUrl}/${path}#token=`));
  assert.ok(link, received.text);
  return link;
};

test("a reset link from the mail, opened in Chromium, sets a new password once", { skip: !PYTHON && "no aiosmtpd" }, async () => {
  const signup = await gql(
    "mutation($i: SignupInput!) { signup(input: $i) { accessToken } }",
    { i: { username: "clicker", email: "clicker@example.com", password: PASSWORD } },
  );
  assert.ok(signup.data, JSON.stringify(signup));
  const verification = await mail(1);
  assert.deepEqual(verification.rcpt_tos, ["clicker@example.com"]);

  const asked = await gql("mutation { requestPasswordReset(email: \"clicker@example.com\") }");
  assert.equal(asked.data.requestPasswordReset, true);
  const reset = await mail(2);
  assert.equal(reset.headers.Subject, "Reset your password");
  const link = linkIn(reset, "reset-password");
  console.log(`received: To ${reset.headers.To}, Subject "${reset.headers.Subject}", link ${link.replace(/token=.*/, "token=<redacted>")}`);

  const context = await browser.newContext();
  const page = await context.newPage();
  const elsewhere = [];
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(publicUrl) && url !== "about:blank") elsewhere.push(url);
  });
  const response = await page.goto(link);
  assert.equal(response.headers()["referrer-policy"], "no-referrer");
  assert.match(response.headers()["content-security-policy"], /default-src 'none'/);
  await page.waitForFunction(() => !location.hash);
  assert.equal(new URL(page.url()).hash, "", "the token leaves the address bar");
  // A common password is refused in a person's words, no field name in them.
  await page.fill("#password", "password1");
  await page.click("#submit");
  await page.waitForSelector("#status[data-result=error]");
  const refused = await page.textContent("#status");
  assert.match(refused, /one of the most common ones/);
  assert.doesNotMatch(refused, /newPassword/);
  await page.fill("#password", "chosen in the browser");
  await page.click("#submit");
  await page.waitForSelector("#status[data-result=ok]");
  assert.equal(await page.getAttribute("#status", "data-result"), "ok", await page.textContent("#status"));
  assert.match(await page.textContent("#status"), /password is changed/);
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, "reset-password.png") });

  const login = (password) => gql(
    "mutation($p: String!) { login(input: {username: \"clicker\", password: $p}) { accessToken } }",
    { p: password },
  );
  assert.ok((await login("chosen in the browser")).data?.login, "the new password logs in");
  assert.equal((await login(PASSWORD)).errors[0].extensions.code, "INVALID_CREDENTIALS");

  // The same link a second time (a fresh load): the page says it is spent.
  await page.goto("about:blank");
  await page.goto(link);
  await page.fill("#password", "one more new password");
  await page.click("#submit");
  await page.waitForSelector("#status[data-result]");
  assert.equal(await page.getAttribute("#status", "data-result"), "error");
  assert.match(await page.textContent("#status"), /expired or was used/);

  // The signup's verification link confirms the address.
  await page.goto("about:blank");
  await page.goto(linkIn(verification, "verify-email"));
  await page.waitForSelector("#status[data-result]");
  assert.equal(await page.getAttribute("#status", "data-result"), "ok", await page.textContent("#status"));
  const token = (await login("chosen in the browser")).data.login.accessToken;
  const me = await fetch(`${authgraph.base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "{ me { emailVerified } }" }),
  });
  assert.equal((await me.json()).data.me.emailVerified, true);
  assert.deepEqual(elsewhere, [], "the pages ask nothing of any other host");
  await context.close();
});
