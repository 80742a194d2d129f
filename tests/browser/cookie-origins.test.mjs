// Cookie mode where the README sends a newcomer, in Debian's Chromium, with
// no PUBLIC_URL and no CORS_ALLOWED_ORIGINS: authgraph's own page reached
// on 127.0.0.1 and on localhost (GraphiQL's origin, on a port other than
// PUBLIC_URL's default), and a dev proxy in front (as Vite's `server.proxy`
// does: the app's origin, its Host kept). Each signs up and refreshes from
// the cookie alone. A page of another origin on the same site is refused,
// and the answer names the two settings.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium } from "./chromium.mjs";

import { startAuthgraph } from "../support/start-authgraph.mjs";

const PAGE = readFileSync(join(import.meta.dirname, "app", "index.html"));

let authgraph;
let port;
let proxy;
let browser;

before(async () => {
  authgraph = await startAuthgraph({ REFRESH_TOKEN_COOKIE: "on" });
  port = new URL(authgraph.base).port;
  // The dev proxy: the app's page, and /graphql passed on with its Host.
  proxy = createServer((req, res) => {
    if (!req.url.startsWith("/graphql")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
      return;
    }
    const upstream = request(
      { host: "127.0.0.1", port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  authgraph?.stop();
  proxy?.close();
});

/** Runs `query` from the page with the browser's cookies; the status and body. */
const call = (page, url, query) =>
  page.evaluate(
    async ({ url, query }) => {
      const response = await fetch(url, {
        method: "POST",
        credentials: "include",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query }),
      });
      return { status: response.status, body: await response.json() };
    },
    { url, query },
  );

const SIGNUP = (name) =>
  `mutation { signup(input: { username: "${name}", email: "${name}@example.com", password: "correct horse battery" }) { accessToken user { username } } }`;
const REFRESH = "mutation { refreshToken { accessToken user { username } } }";

/** Runs `fn` with a page of a fresh browser context (its own cookies). */
async function inNewContext(fn) {
  const context = await browser.newContext();
  try {
    await fn(context);
  } finally {
    await context.close();
  }
}

/** Signs `name` up from `page` and refreshes from the cookie alone. */
async function signUpAndRefresh(page, url, name) {
  const signup = await call(page, url, SIGNUP(name));
  assert.equal(signup.status, 200, JSON.stringify(signup));
  assert.equal(signup.body.data?.signup.user.username, name, JSON.stringify(signup));
  const refreshed = await call(page, url, REFRESH);
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed));
  assert.equal(refreshed.body.data?.refreshToken.user.username, name, JSON.stringify(refreshed));
}

for (const host of ["127.0.0.1", "localhost"]) {
  test(`authgraph's own page at http://${host}:PORT refreshes from the cookie`, () =>
    inNewContext(async (context) => {
      const page = await context.newPage();
      const origin = `http://${host}:${port}`;
      // GraphiQL: the page a newcomer opens first.
      await page.goto(`${origin}/graphql`, { waitUntil: "load" });
      await signUpAndRefresh(page, `${origin}/graphql`, `own_${host.replace(/\W/g, "")}`);
    }));
}

test("an app behind a dev proxy that keeps its Host refreshes from the cookie", () =>
  inNewContext(async (context) => {
    const page = await context.newPage();
    const origin = `http://localhost:${proxy.address().port}`;
    await page.goto(`${origin}/`);
    await signUpAndRefresh(page, `${origin}/graphql`, "proxied");
  }));

test("a page of another origin on the same site is refused, naming the settings", () =>
  inNewContext(async (context) => {
    const page = await context.newPage();
    const own = `http://localhost:${port}`;
    await page.goto(`${own}/graphql`, { waitUntil: "load" });
    await signUpAndRefresh(page, `${own}/graphql`, "victim");
    // The proxy's origin is another origin of the same site (localhost):
    // the browser sends the SameSite=Strict cookie along. A form post needs
    // no CORS; its answer is read from the network.
    const other = await context.newPage();
    await other.goto(`http://localhost:${proxy.address().port}/`);
    const answer = other.waitForResponse((r) => r.url() === `${own}/graphql`);
    await other.evaluate((url) => {
      const form = document.createElement("form");
      form.method = "POST";
      form.action = url;
      form.enctype = "text/plain";
      const field = document.createElement("input");
      field.name = '{"query":"mutation { refreshToken { accessToken } }", "x":"';
      field.value = '"}';
      form.appendChild(field);
      document.body.appendChild(form);
      form.submit();
    }, `${own}/graphql`);
    const response = await answer;
    assert.equal(response.status(), 403);
    const body = await response.json();
    assert.equal(body.errors[0].extensions.code, "FORBIDDEN");
    assert.match(body.errors[0].message, /PUBLIC_URL/);
    assert.match(body.errors[0].message, /CORS_ALLOWED_ORIGINS/);
  }));
