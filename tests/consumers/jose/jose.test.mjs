// A downstream service as Node services verify tokens: jose's
// createRemoteJWKSet fetches authgraph's /.well-known/jwks.json (found
// through the discovery document) and jwtVerify checks signature, issuer and
// audience. For each asymmetric algorithm: the access token verifies; the
// refresh token does not, even with no audience check; another audience or
// issuer, and a tampered token, are refused.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";

import { freePort, signup, startAuthgraph } from "../../support/start-authgraph.mjs";


for (const algorithm of ["EdDSA", "ES256", "RS256"]) {
  test(`jose verifies ${algorithm} access tokens from the JWKS and refuses refresh tokens`, async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const server = await startAuthgraph({ BIND_ADDR: `127.0.0.1:${port}`, PUBLIC_URL: publicUrl, JWT_ALGORITHM: algorithm });
    try {
      const discovery = await (await fetch(`${publicUrl}/.well-known/openid-configuration`)).json();
      assert.equal(discovery.issuer, publicUrl);
      const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
      const tokens = await signup(server.base, `jose${algorithm.toLowerCase()}`);

      const { payload, protectedHeader } = await jwtVerify(tokens.accessToken, jwks, {
        issuer: discovery.issuer,
        audience: "authgraph",
        algorithms: [algorithm],
      });
      assert.equal(payload.sub, tokens.user.id);
      assert.equal(payload.typ, "access");
      assert.equal(payload.role, "USER");
      assert.equal(protectedHeader.alg, algorithm);
      console.log(
        `jose ${algorithm}: verified kid=${protectedHeader.kid} sub=${payload.sub} iss=${payload.iss} aud=${payload.aud} role=${payload.role}`,
      );

      // The refresh token is HS256 under a secret that never leaves authgraph.
      assert.equal(decodeProtectedHeader(tokens.refreshToken).alg, "HS256");
      for (const options of [{ issuer: discovery.issuer }, {}]) {
        await assert.rejects(jwtVerify(tokens.refreshToken, jwks, options), (err) => {
          console.log(`jose ${algorithm}: refresh token refused (${JSON.stringify(options)}): ${err.code}`);
          return true;
        });
      }
      await assert.rejects(
        jwtVerify(tokens.accessToken, jwks, { issuer: discovery.issuer, audience: "another-service" }),
        { code: "ERR_JWT_CLAIM_VALIDATION_FAILED" },
      );
      await assert.rejects(
        jwtVerify(tokens.accessToken, jwks, { issuer: "https://elsewhere.example", audience: "authgraph" }),
        { code: "ERR_JWT_CLAIM_VALIDATION_FAILED" },
      );
      const [h, p, s] = tokens.accessToken.split(".");
      const claims = JSON.parse(Buffer.from(p, "base64url"));
      claims.role = "ADMIN";
      const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
      await assert.rejects(jwtVerify(tampered, jwks, { issuer: discovery.issuer, audience: "authgraph" }), {
        code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
      });
    } finally {
      server.stop();
    }
  });
}
