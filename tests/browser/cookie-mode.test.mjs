// Cookie mode in a real browser: Debian's Chromium loads a web app from a
// second origin on localhost (its own port, served here), which calls a real
// authgraph with REFRESH_TOKEN_COOKIE=on and CORS for that origin. The whole
// flow runs in the page: signup, `me`, a reload that refreshes from the
// cookie alone, two tabs refreshing at once, logout clearing the cookie. The
// same app from an origin that is not allowed is blocked by the browser.
import assert from "node:assert/strict";
import { readFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium } from "./chromium.mjs";

import { freePort, startAuthgraph } from "../support/start-authgraph.mjs";

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? join(import.meta.dirname, "screenshots");
const PAGE = readFileSync(join(import.meta.dirname, "app", "index.html"));


let authgraph;
let appServer;
let api;
let appOrigin;
let appPort;
let browser;

before(async () => {
  const apiPort = await freePort();
  appServer = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  await new Promise((ok) => appServer.listen(0, "127.0.0.1", ok));
  appPort = appServer.address().port;
  appOrigin = `http://localhost:${appPort}`;
  authgraph = await startAuthgraph({
    BIND_ADDR: `127.0.0.1:${apiPort}`,
    PUBLIC_URL: `http://localhost:${apiPort}`,
    CORS_ALLOWED_ORIGINS: appOrigin,
    REFRESH_TOKEN_COOKIE: "on",
  });
  api = `http://localhost:${apiPort}/graphql`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  authgraph?.stop();
  appServer?.close();
});

/** A tab of `context` on the app, served from `origin`. */
async function openApp(context, origin) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(`${origin}/?api=${encodeURIComponent(api)}`);
  await page.waitForFunction(() => window.app !== undefined);
  return { page, errors };
}

const refreshCookie = async (context) =>
  (await context.cookies(api)).find((c) => c.name === "__Host-authgraph-refresh");

test("cookie mode from a second origin: signup, me, reload, two tabs, logout", async () => {
  const context = await browser.newContext({ viewport: { width: 900, height: 520 } });
  try {
    const { page, errors } = await openApp(context, appOrigin);

    const signup = await page.evaluate(() => window.app.signup("cookietab"));
    assert.equal(signup.data.signup.user.username, "cookietab", JSON.stringify(signup));
    assert.equal(signup.data.signup.refreshToken, null, "the body holds no refresh token");
    const cookie = await refreshCookie(context);
    assert.ok(cookie, "the browser kept the refresh cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(cookie.path, "/");
    assert.equal(await page.evaluate(() => document.cookie), "", "no script of the page sees it");

    assert.equal((await page.evaluate(() => window.app.me())).data.me.username, "cookietab");

    // A reload forgets the access token; the cookie alone brings a new one.
    await page.reload();
    await page.waitForFunction(() => window.app !== undefined);
    assert.equal(await page.evaluate(() => window.app.hasAccessToken()), false);
    const resumed = await page.evaluate(() => window.app.refresh("after the reload"));
    assert.ok(resumed.body.data, JSON.stringify(resumed));
    assert.equal((await page.evaluate(() => window.app.me())).data.me.username, "cookietab");
    assert.notEqual((await refreshCookie(context)).value, cookie.value, "the cookie was rotated");

    // Two tabs share the cookie and refresh at the same moment: one wins, the
    // other is told `rotated` and retries with the newer cookie; both end up
    // signed in. (Rounds until a `rotated` was seen: on a busy machine one
    // tab's answer may land before the other tab sends.)
    const second = await openApp(context, appOrigin);
    let rotatedSeen = 0;
    for (let round = 1; round <= 5 && rotatedSeen === 0; round += 1) {
      const at = (await page.evaluate(() => Date.now())) + 300;
      const both = await Promise.all([
        page.evaluate((t) => window.app.refresh("in tab 1", t), at),
        second.page.evaluate((t) => window.app.refresh("in tab 2", t), at),
      ]);
      for (const { body, reasons } of both) {
        assert.ok(body?.data, JSON.stringify(both));
        assert.ok(reasons.every((r) => r === "rotated"), JSON.stringify(both));
      }
      rotatedSeen = both.flatMap((b) => b.reasons).length;
      assert.equal((await page.evaluate(() => window.app.me())).data.me.username, "cookietab", "tab 1");
      assert.equal((await second.page.evaluate(() => window.app.me())).data.me.username, "cookietab", "tab 2");
    }
    assert.ok(rotatedSeen > 0, "two tabs at once: one was told `rotated`");
    await page.evaluate(
      (n) => window.app.log(`two tabs refreshed at once: ${n} 'rotated' answer retried with the newer cookie; the session lives`),
      rotatedSeen,
    );

    const out = await page.evaluate(() => window.app.logout());
    assert.equal(out.data.logout, true);
    assert.equal(await refreshCookie(context), undefined, "logout cleared the cookie");
    const after = await second.page.evaluate(() => window.app.refresh("after logout"));
    assert.equal(after.body.errors[0].extensions.reason, "missing");

    mkdirSync(SCREENSHOTS, { recursive: true });
    const shot = join(SCREENSHOTS, "cookie-mode.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
    assert.deepEqual([...errors, ...second.errors], [], "no script errors");
  } finally {
    await context.close();
  }
});

test("the same app on an origin that is not allowed is blocked", async () => {
  const context = await browser.newContext();
  try {
    // 127.0.0.1 is not localhost to a browser: another origin, not in the list.
    const { page } = await openApp(context, `http://127.0.0.1:${appPort}`);
    const outcome = await page.evaluate(async () => {
      try {
        await window.app.signup("blocked");
        return "the request went through";
      } catch (err) {
        return String(err);
      }
    });
    assert.match(outcome, /TypeError: Failed to fetch/);
    assert.equal(await refreshCookie(context), undefined, "no cookie");
    // The preflight failed, so the signup never ran.
    const probe = await fetch(`${authgraph.base}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: 'mutation { login(input: {username: "blocked", password: "correct horse battery"}) { accessToken } }',
      }),
    });
    assert.equal((await probe.json()).errors[0].extensions.code, "INVALID_CREDENTIALS");
  } finally {
    await context.close();
  }
});
