// GraphiQL as a person uses it: Debian's Chromium loads GET /graphql from a
// real authgraph, a signup mutation is typed into the page's editor and run,
// and the result pane shows the access token. The page must work with no
// network beyond authgraph: every other request is refused and counted.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const here = import.meta.dirname;
const BIN = process.env.AUTHGRAPH_BIN ?? resolve(here, "../../target/debug/authgraph");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? join(here, "screenshots");

let server;
let dir;
let base;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "authgraph-browser-"));
  server = spawn(BIN, ["serve"], {
    cwd: dir,
    env: { PATH: process.env.PATH, BIND_ADDR: "127.0.0.1:0", AUTH_RATE_LIMIT_PER_MINUTE: "0", RUST_LOG: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("authgraph did not start")), 30_000);
    createInterface({ input: server.stderr }).on("line", (line) => {
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    server.on("exit", (code) => fail(new Error(`authgraph exited with ${code}`)));
  });
});

after(() => {
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

test("a signup mutation run in GraphiQL shows the access token", async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const outside = [];
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.origin === base) return route.continue();
      outside.push(url.href);
      return route.abort();
    });
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));

    await page.goto(`${base}/graphql`);
    const editor = page.locator(".graphiql-query-editor .CodeMirror").first();
    await editor.waitFor({ timeout: 20_000 });

    // Type into the editor as a person would (insertText: one input event, so
    // the editor's bracket auto-closing doesn't double the braces).
    await editor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(
      'mutation SignupInBrowser {\n  signup(input: {username: "browser", email: "browser@example.com", password: "correct horse battery"}) {\n    tokenType\n    expiresIn\n    accessToken\n    user { username role }\n  }\n}\n',
    );
    // GraphiQL re-reads the document's operations a moment after an edit; a
    // click before that would still send the old default query's name.
    await page.waitForTimeout(1_000);
    await page.locator("button.graphiql-execute-button").click();

    const result = page.locator(".result-window");
    await result.getByText("accessToken").waitFor({ timeout: 20_000 });
    const text = await result.innerText();
    assert.match(text, /"accessToken": "eyJ[\w-]+\.[\w-]+\.[\w-]+"/);
    assert.match(text, /"tokenType": "Bearer"/);
    assert.match(text, /"username": "browser"/);

    mkdirSync(SCREENSHOTS, { recursive: true });
    const shot = join(SCREENSHOTS, "graphiql.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);

    assert.deepEqual(outside, [], "GraphiQL needs nothing from outside authgraph");
    assert.deepEqual(pageErrors, [], "no script errors on the page");
  } finally {
    await browser.close();
  }
});
