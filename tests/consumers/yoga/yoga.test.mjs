// GraphQL Yoga as a consumer of authgraph's tokens: `authgraph
// gateway-config yoga` writes the options of @graphql-yoga/plugin-jwt, this
// test runs a Yoga server with exactly that module, and the server accepts
// authgraph's access token and refuses its refresh token, a token of another
// issuer, one of another audience, and a forged one. The Hasura and Apollo
// Router configurations are parsed in their own formats and checked key by key.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import { createSchema, createYoga } from "graphql-yoga";
import YAML from "yaml";

import { DEFAULT_BIN, freePort, signup, startAuthgraph, startSmtpSink } from "../../support/start-authgraph.mjs";

const BIN = process.env.AUTHGRAPH_BIN ?? DEFAULT_BIN;
const GENERATED = join(import.meta.dirname, ".generated");

/** `authgraph gateway-config CONSUMER` under these settings. */
function gatewayConfig(consumer, env) {
  const run = spawnSync(BIN, ["gateway-config", consumer], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A Yoga server with the generated plugins; resolves `whoami` from the verified token. */
async function yogaWith(plugins) {
  const yoga = createYoga({
    schema: createSchema({
      typeDefs: "type Query { whoami: String, role: String }",
      resolvers: {
        Query: {
          whoami: (_, __, context) => context.jwt?.payload.sub ?? null,
          role: (_, __, context) => context.jwt?.payload.role ?? null,
        },
      },
    }),
    plugins,
    logging: false,
  });
  const server = createServer(yoga);
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${server.address().port}/graphql`;
  const ask = async (token) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query: "{ whoami role }" }),
    });
    return { status: response.status, body: await response.json() };
  };
  return { ask, close: () => new Promise((ok) => server.close(ok)) };
}

for (const algorithm of ["ES256", "RS256"]) {
  test(`a Yoga server configured by gateway-config yoga verifies ${algorithm} access tokens`, async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const settings = { PUBLIC_URL: publicUrl, JWT_ALGORITHM: algorithm };
    const authgraph = await startAuthgraph({ ...settings, BIND_ADDR: `127.0.0.1:${port}` });
    // Two more servers with the same signing key: another issuer, another audience.
    const key = join(authgraph.dir, "authgraph.signing.pem");
    const otherIssuer = await startAuthgraph({ JWT_ALGORITHM: algorithm, JWT_SIGNING_KEY_FILE: key, JWT_ISSUER: "https://elsewhere.example" });
    const otherAudience = await startAuthgraph({ ...settings, JWT_SIGNING_KEY_FILE: key, JWT_AUDIENCE: "another-service" });
    let yoga;
    try {
      const generated = gatewayConfig("yoga", settings);
      assert.equal(generated.status, 0, generated.stderr);
      console.log(`gateway-config yoga (${algorithm}):\n${generated.stdout}`);
      mkdirSync(GENERATED, { recursive: true });
      const module = join(GENERATED, `authgraph-jwt-${algorithm}.mjs`);
      writeFileSync(module, generated.stdout);
      const { authgraphJwt, authgraphPlugins } = await import(pathToFileURL(module).href);
      assert.deepEqual(authgraphJwt.tokenVerification, { algorithms: [algorithm], issuer: [publicUrl], audience: "authgraph" });
      assert.equal(authgraphPlugins.length, 1, "no email check unless EMAIL_VERIFICATION=required");
      yoga = await yogaWith(authgraphPlugins);

      const tokens = await signup(authgraph.base, `yoga${algorithm.toLowerCase()}`);
      const accepted = await yoga.ask(tokens.accessToken);
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      assert.deepEqual(accepted.body.data, { whoami: tokens.user.id, role: "USER" });
      console.log(`Yoga ${algorithm}: access token accepted: ${JSON.stringify(accepted.body.data)}`);

      const anonymous = await yoga.ask(null);
      assert.deepEqual(anonymous.body.data, { whoami: null, role: null }, "no token: unauthenticated, not refused");

      const [h, p, s] = tokens.accessToken.split(".");
      const claims = JSON.parse(Buffer.from(p, "base64url"));
      claims.role = "ADMIN";
      const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
      const elsewhere = await signup(otherIssuer.base, "elsewhere");
      const otherAud = await signup(otherAudience.base, "otheraud");
      const refused = {
        "the refresh token": tokens.refreshToken,
        "a token of another issuer": elsewhere.accessToken,
        "a token of another audience": otherAud.accessToken,
        "a forged token": forged,
      };
      for (const [what, token] of Object.entries(refused)) {
        const answer = await yoga.ask(token);
        assert.equal(answer.body.data?.whoami ?? null, null, `${what}: ${JSON.stringify(answer.body)}`);
        assert.ok(answer.body.errors?.length, `${what} is refused`);
        console.log(`Yoga ${algorithm}: ${what} refused: HTTP ${answer.status} ${answer.body.errors[0].message}`);
      }
    } finally {
      await yoga?.close();
      for (const server of [authgraph, otherIssuer, otherAudience]) server.stop();
    }
  });
}

/** POSTs one operation to authgraph at `base`; the parsed body. */
async function gql(base, query, variables) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

test("under EMAIL_VERIFICATION=required the Yoga config refuses an unverified account's token", async () => {
  const sink = await startSmtpSink();
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const settings = { PUBLIC_URL: publicUrl, JWT_ALGORITHM: "ES256", EMAIL_VERIFICATION: "required", SMTP_URL: sink.url };
  const authgraph = await startAuthgraph({ ...settings, BIND_ADDR: `127.0.0.1:${port}` });
  let yoga;
  try {
    const generated = gatewayConfig("yoga", settings);
    assert.equal(generated.status, 0, generated.stderr);
    mkdirSync(GENERATED, { recursive: true });
    const module = join(GENERATED, "authgraph-jwt-verified.mjs");
    writeFileSync(module, generated.stdout);
    const { authgraphPlugins } = await import(pathToFileURL(module).href);
    assert.equal(authgraphPlugins.length, 2);
    yoga = await yogaWith(authgraphPlugins);

    const tokens = await signup(authgraph.base, "unverified");
    const claims = JSON.parse(Buffer.from(tokens.accessToken.split(".")[1], "base64url"));
    assert.equal(claims.email_verified, false);
    const refused = await yoga.ask(tokens.accessToken);
    assert.equal(refused.body.data?.whoami ?? null, null, JSON.stringify(refused.body));
    assert.equal(refused.body.errors?.[0]?.extensions?.code, "EMAIL_NOT_VERIFIED", JSON.stringify(refused.body));
    console.log(`Yoga: unverified account refused: HTTP ${refused.status} ${refused.body.errors[0].message}`);

    // The account verifies its address from the mail; its next login's token passes.
    let mail;
    for (let i = 0; i < 200 && !mail; i++) {
      mail = sink.mails().find((m) => m.rcpt_tos.includes("unverified@example.com"));
      if (!mail) await new Promise((ok) => setTimeout(ok, 50));
    }
    assert.ok(mail, "the verification mail arrived");
    const token = /verify-email#token=([A-Za-z0-9_-]+)/.exec(mail.text)[1];
    const verified = await gql(authgraph.base, "mutation($t: String!) { verifyEmail(token: $t) }", { t: token });
    assert.equal(verified.data?.verifyEmail, true, JSON.stringify(verified));
    const login = await gql(
      authgraph.base,
      "mutation($i: LoginInput!) { login(input: $i) { accessToken user { id } } }",
      { i: { username: "unverified", password: "correct horse battery" } },
    );
    const access = login.data.login.accessToken;
    assert.equal(JSON.parse(Buffer.from(access.split(".")[1], "base64url")).email_verified, true);
    const accepted = await yoga.ask(access);
    assert.deepEqual(accepted.body.data, { whoami: login.data.login.user.id, role: "USER" }, JSON.stringify(accepted.body));
    console.log("Yoga: the same account accepted once verified");
  } finally {
    await yoga?.close();
    authgraph.stop();
    sink.stop();
  }
});

test("gateway-config writes Hasura's JSON and Apollo Router's YAML from the settings", () => {
  const settings = {
    PUBLIC_URL: "https://auth.example.com",
    JWT_ALGORITHM: "EdDSA",
    JWT_CLAIMS: "hasura",
    JWT_AUDIENCE: "my-api",
  };
  const hasura = gatewayConfig("hasura", settings);
  assert.equal(hasura.status, 0, hasura.stderr);
  assert.equal(hasura.stderr, "");
  console.log(`gateway-config hasura:\n${hasura.stdout}`);
  assert.equal(hasura.stdout.trim().split("\n").length, 1, "one line, for HASURA_GRAPHQL_JWT_SECRET");
  const secret = JSON.parse(hasura.stdout);
  assert.equal(secret.jwk_url, "https://auth.example.com/.well-known/jwks.json");
  assert.equal(secret.issuer, "https://auth.example.com");
  assert.equal(secret.audience, "my-api");
  assert.equal(secret.claims_namespace, "https://hasura.io/jwt/claims");
  assert.equal(secret.claims_format, "json");
  assert.deepEqual(secret.header, { type: "Authorization" });
  assert.equal(secret.key, undefined, "no key material, only where to fetch it");

  const standard = gatewayConfig("hasura", { ...settings, JWT_CLAIMS: "standard" });
  assert.equal(standard.status, 0);
  assert.match(standard.stderr, /JWT_CLAIMS/, "warns that Hasura needs its claims");

  const router = gatewayConfig("apollo-router", settings);
  assert.equal(router.status, 0, router.stderr);
  console.log(`gateway-config apollo-router:\n${router.stdout}`);
  const jwt = YAML.parse(router.stdout).authentication.router.jwt;
  assert.equal(jwt.header_name, "Authorization");
  assert.equal(jwt.header_value_prefix, "Bearer");
  assert.equal(jwt.jwks.length, 1);
  assert.deepEqual(jwt.jwks[0], {
    url: "https://auth.example.com/.well-known/jwks.json",
    issuers: ["https://auth.example.com"],
    audiences: ["my-api"],
    algorithms: ["EdDSA"],
  });

  // Under EMAIL_VERIFICATION=required: the Router's output shows the script
  // that refuses an unverified account; Hasura's says what it can't check.
  const required = { ...settings, EMAIL_VERIFICATION: "required", SMTP_URL: "smtp://127.0.0.1:25" };
  const routerRequired = gatewayConfig("apollo-router", required);
  assert.equal(routerRequired.status, 0, routerRequired.stderr);
  assert.deepEqual(YAML.parse(routerRequired.stdout), YAML.parse(router.stdout), "comments only");
  assert.match(routerRequired.stdout, /email_verified"\] == false/);
  const hasuraRequired = gatewayConfig("hasura", required);
  assert.equal(hasuraRequired.status, 0, hasuraRequired.stderr);
  assert.equal(hasuraRequired.stdout, hasura.stdout);
  assert.match(hasuraRequired.stderr, /email_verified/);

  // Nothing to publish under HS256; Yoga's plugin has no EdDSA.
  for (const consumer of ["hasura", "apollo-router", "yoga"]) {
    const symmetric = gatewayConfig(consumer, { PUBLIC_URL: "https://auth.example.com" });
    assert.equal(symmetric.status, 1, consumer);
    assert.match(symmetric.stderr, /HS256/);
    assert.equal(symmetric.stdout, "");
  }
  const yogaEdDSA = gatewayConfig("yoga", settings);
  assert.equal(yogaEdDSA.status, 1);
  assert.match(yogaEdDSA.stderr, /EdDSA/);
});
