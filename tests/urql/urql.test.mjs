// urql on its defaults against the real authgraph binary: queries go out as
// GET (within the URL limit) with `application/graphql-response+json` first in
// `Accept`, mutations as POST. Signup, me, refresh and logout.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client, fetchExchange, gql } from "@urql/core";
import { startAuthgraph } from "../support/start-authgraph.mjs";

const PASSWORD = "correct horse battery";
let server;
before(async () => {
  server = await startAuthgraph();
});
after(() => server?.stop());

const SIGNUP = gql`
  mutation Signup($input: SignupInput!) {
    signup(input: $input) { accessToken refreshToken user { username } }
  }
`;
const ME = gql`query Me { me { id username } }`;
const REFRESH = gql`
  mutation Refresh($refreshToken: String!) {
    refreshToken(refreshToken: $refreshToken) { accessToken refreshToken }
  }
`;
const LOGOUT = gql`mutation Logout($refreshToken: String!) { logout(refreshToken: $refreshToken) }`;

test("signup, me by GET, refresh, logout", async () => {
  const methods = [];
  let accessToken = null;
  const client = new Client({
    url: `${server.base}/graphql`,
    exchanges: [fetchExchange],
    fetch: (input, init) => {
      methods.push({ method: init?.method ?? "GET", accept: new Headers(init?.headers).get("accept") });
      return fetch(input, init);
    },
    fetchOptions: () => (accessToken ? { headers: { Authorization: `Bearer ${accessToken}` } } : {}),
    requestPolicy: "network-only",
  });

  const signup = await client
    .mutation(SIGNUP, { input: { username: "urql", email: "urql@example.com", password: PASSWORD } })
    .toPromise();
  assert.equal(signup.error, undefined, String(signup.error));
  accessToken = signup.data.signup.accessToken;
  let refreshToken = signup.data.signup.refreshToken;

  const me = await client.query(ME, {}).toPromise();
  assert.equal(me.error, undefined, String(me.error));
  assert.equal(me.data.me.username, "urql");
  assert.equal(methods.at(-1).method, "GET", "urql sends queries as GET");
  assert.match(methods.at(-1).accept, /^application\/graphql-response\+json/);

  const refreshed = await client.mutation(REFRESH, { refreshToken }).toPromise();
  assert.equal(refreshed.error, undefined, String(refreshed.error));
  assert.notEqual(refreshed.data.refreshToken.refreshToken, refreshToken);
  accessToken = refreshed.data.refreshToken.accessToken;
  refreshToken = refreshed.data.refreshToken.refreshToken;
  assert.equal((await client.query(ME, {}).toPromise()).data.me.username, "urql");

  const logout = await client.mutation(LOGOUT, { refreshToken }).toPromise();
  assert.equal(logout.data.logout, true);
  const after = await client.query(ME, {}).toPromise();
  assert.equal(after.error.graphQLErrors[0].extensions.code, "UNAUTHENTICATED");
  assert.equal(after.error.graphQLErrors[0].extensions.reason, "revoked");
  assert.equal(methods.filter((m) => m.method === "POST").length, 3, "the three mutations by POST");
});
