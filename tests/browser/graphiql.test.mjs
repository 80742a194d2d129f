// GraphiQL as a person uses it: Debian's Chromium loads GET /graphql from a
// real authgraph, a signup mutation is typed into the page's editor and run,
// and the result pane shows the access token. The page must work with no
// network beyond authgraph: every other request is refused and counted.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium } from "./chromium.mjs";

import { startAuthgraph } from "../support/start-authgraph.mjs";

const SCREENSHOTS = process.env.SCREENSHOT_DIR ?? join(import.meta.dirname, "screenshots");

let server;
let base;

before(async () => {
  server = await startAuthgraph();
  base = server.base;
});

after(() => server?.stop());

test("a signup mutation run in GraphiQL shows the access token", async () => {
  const browser = await launchChromium();
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

    // A `query` parameter opens the editor on that document.
    await page.goto(`${base}/graphql?query=${encodeURIComponent("query FromTheLink { __typename }")}`);
    await editor.waitFor({ timeout: 20_000 });
    await page.getByText("FromTheLink").first().waitFor({ timeout: 20_000 });
    assert.match(await editor.innerText(), /query FromTheLink/);

    assert.deepEqual(outside, [], "GraphiQL needs nothing from outside authgraph");
    assert.deepEqual(pageErrors, [], "no script errors on the page");
  } finally {
    await browser.close();
  }
});
