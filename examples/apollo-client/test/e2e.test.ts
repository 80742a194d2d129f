// Runs the Apollo Client example against a real authgraph server (the binary
// the Rust build produced) with a 2-second access token lifetime.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import makeFetchCookie from "fetch-cookie";
import { CookieJar } from "tough-cookie";

import { startAuthgraph } from "../../../tests/support/start-authgraph.mjs";
import { createAuthClient } from "../src/client.js";
import { LOGIN, ME, SIGNUP } from "../src/operations.js";

const PASSWORD = "correct horse battery";

let server: { base: string; stop: () => void };
let base: string;

before(async () => {
  server = await startAuthgraph({ ACCESS_TOKEN_TTL: "2" });
  base = server.base;
});

after(() => server?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serverMetric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

/** `me` with a raw access token, outside the client: what the server says of it. */
async function rawMe(accessToken: string) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${accessToken}` },
    body: JSON.stringify({ query: "{ me { id } }" }),
  });
  return (await response.json()) as { errors?: { extensions: { code: string; reason?: string } }[] };
}

test("signup, me, expiry with one shared refresh, logout", async () => {
  const client = createAuthClient(`${base}/graphql`);
  const { data } = await client.apollo.mutate({
    mutation: SIGNUP,
    variables: { input: { username: "apollo", email: "apollo@example.com", password: PASSWORD } },
  });
  assert.ok(data);
  assert.equal(data.signup.expiresIn, 2);
  client.setTokens({ accessToken: data.signup.accessToken, refreshToken: data.signup.refreshToken ?? null });

  const me = await client.apollo.query({ query: ME });
  assert.equal(me.data.me.username, "apollo");
  assert.equal(me.data.me.role, "USER");
  assert.equal(client.refreshCount(), 0);

  const refreshesBefore = await serverMetric("authgraph_refreshes_total");
  const expiredToken = client.tokens()!.accessToken;
  await sleep(3_100);
  assert.deepEqual((await rawMe(expiredToken)).errors?.[0].extensions, { code: "UNAUTHENTICATED", reason: "expired" });

  // Five at once, all with the expired token: one refresh, five answers.
  const results = await Promise.all(
    Array.from({ length: 5 }, () => client.apollo.query({ query: ME, context: { queryDeduplication: false } })),
  );
  for (const result of results) assert.equal(result.data.me.username, "apollo");
  assert.equal(client.refreshCount(), 1, "exactly one refreshToken call");
  assert.equal((await serverMetric("authgraph_refreshes_total")) - refreshesBefore, 1);
  assert.notEqual(client.tokens()!.accessToken, expiredToken);

  const lastToken = client.tokens()!.accessToken;
  await client.logout();
  assert.equal(client.tokens(), null);
  await assert.rejects(client.apollo.query({ query: ME }), /Authentication required/);
  assert.deepEqual((await rawMe(lastToken)).errors?.[0].extensions, { code: "UNAUTHENTICATED", reason: "revoked" });
});

test("a refresh that fails clears the tokens", async () => {
  await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      query: "mutation($i: SignupInput!) { signup(input: $i) { accessToken } }",
      variables: { i: { username: "elsewhere", email: "elsewhere@example.com", password: PASSWORD } },
    }),
  });
  const client = createAuthClient(`${base}/graphql`);
  const { data } = await client.apollo.mutate({ mutation: LOGIN, variables: { input: { username: "elsewhere", password: PASSWORD } } });
  assert.ok(data);
  client.setTokens({ accessToken: data.login.accessToken, refreshToken: data.login.refreshToken ?? null });

  // The session is ended from another device while this client holds its tokens.
  const other = createAuthClient(`${base}/graphql`);
  other.setTokens(client.tokens());
  await other.logout();

  await sleep(3_100);
  await assert.rejects(client.apollo.query({ query: ME }), /session has ended/);
  assert.equal(client.refreshCount(), 1);
  assert.equal(client.tokens(), null, "tokens cleared after a failed refresh");
});

/** A fetch that notes how each request went out: method, hash only or with its query. */
function recordingFetch(seen: { method: string; persisted: boolean; hashOnly: boolean }[]): typeof fetch {
  return async (input, init) => {
    const method = init?.method ?? "GET";
    let body: { query?: string; extensions?: { persistedQuery?: unknown } };
    if (method === "GET") {
      const url = new URL(String(input));
      const extensions = url.searchParams.get("extensions");
      body = { query: url.searchParams.get("query") ?? undefined, extensions: extensions ? JSON.parse(extensions) : undefined };
    } else {
      body = JSON.parse(String(init?.body));
    }
    seen.push({ method, persisted: Boolean(body.extensions?.persistedQuery), hashOnly: !body.query });
    return fetch(input, init);
  };
}

for (const useGETForHashedQueries of [false, true]) {
  test(`persisted queries (${useGETForHashedQueries ? "GET" : "POST"} for queries): signup, me, refresh, logout`, async () => {
    const seen: { method: string; persisted: boolean; hashOnly: boolean }[] = [];
    const client = createAuthClient(`${base}/graphql`, {
      persistedQueries: { useGETForHashedQueries },
      fetch: recordingFetch(seen),
    });
    const name = useGETForHashedQueries ? "apqget" : "apqpost";
    const { data } = await client.apollo.mutate({
      mutation: SIGNUP,
      variables: { input: { username: name, email: `${name}@example.com`, password: PASSWORD } },
    });
    assert.ok(data);
    client.setTokens({ accessToken: data.signup.accessToken, refreshToken: data.signup.refreshToken ?? null });
    assert.equal((await client.apollo.query({ query: ME })).data.me.username, name);
    const before = seen.length;
    assert.equal((await client.apollo.query({ query: ME })).data.me.username, name);
    assert.deepEqual(
      seen.slice(before),
      [{ method: useGETForHashedQueries ? "GET" : "POST", persisted: true, hashOnly: true }],
      "the second `me` is the hash alone, and the server knew it",
    );

    await sleep(3_100);
    assert.equal((await client.apollo.query({ query: ME })).data.me.username, name, "after a refresh");
    assert.equal(client.refreshCount(), 1);
    const lastToken = client.tokens()!.accessToken;
    await client.logout();
    assert.deepEqual((await rawMe(lastToken)).errors?.[0].extensions, { code: "UNAUTHENTICATED", reason: "revoked" });
    assert.ok(seen.every((request) => request.persisted), "every operation went out persisted");
    if (useGETForHashedQueries) {
      assert.ok(seen.some((request) => request.method === "GET" && request.hashOnly), "queries by GET");
    }
  });
}

test("cookie mode: the refresh token never reaches the client, a reload resumes from the cookie", async () => {
  const cookieServer = await startAuthgraph({ ACCESS_TOKEN_TTL: "2", REFRESH_TOKEN_COOKIE: "on" });
  try {
    const uri = `${cookieServer.base}/graphql`;
    // What a browser keeps for the page: one cookie jar, shared by its tabs.
    const jar = new CookieJar();
    const browserFetch = makeFetchCookie(fetch, jar) as typeof fetch;
    const refreshCookie = async () =>
      (await jar.getCookies(uri)).find((c) => c.key === "__Host-authgraph-refresh");

    const client = createAuthClient(uri, { cookieMode: true, fetch: browserFetch });
    const { data } = await client.apollo.mutate({
      mutation: SIGNUP,
      variables: { input: { username: "cookiejar", email: "cookiejar@example.com", password: PASSWORD } },
    });
    assert.ok(data);
    assert.equal(data.signup.refreshToken, null, "no refresh token in the body");
    client.setTokens({ accessToken: data.signup.accessToken, refreshToken: null });
    const kept = await refreshCookie();
    assert.ok(kept, "the refresh token is in the cookie");
    assert.equal(kept.httpOnly, true);
    assert.equal(kept.secure, true);
    assert.equal(kept.sameSite, "strict");
    assert.equal((await client.apollo.query({ query: ME })).data.me.username, "cookiejar");

    // Expiry: one refresh from the cookie serves five waiting queries.
    await sleep(3_100);
    const results = await Promise.all(
      Array.from({ length: 5 }, () => client.apollo.query({ query: ME, context: { queryDeduplication: false } })),
    );
    for (const result of results) assert.equal(result.data.me.username, "cookiejar");
    assert.equal(client.refreshCount(), 1);

    // A reload: new clients with no tokens, two tabs resuming at once.
    const tabs = [0, 1].map(() => createAuthClient(uri, { cookieMode: true, fetch: browserFetch }));
    assert.deepEqual(await Promise.all(tabs.map((tab) => tab.resume())), [true, true]);
    for (const tab of tabs) assert.equal((await tab.apollo.query({ query: ME })).data.me.username, "cookiejar");

    await tabs[0].logout();
    assert.equal(await refreshCookie(), undefined, "logout cleared the cookie");
    assert.equal(await tabs[1].resume(), false, "nothing to resume from");
  } finally {
    cookieServer.stop();
  }
});
