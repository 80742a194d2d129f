// schema.graphql says what introspection says: graphql-js prints the schema
// the real server introspects (every option of getIntrospectionQuery, the
// schema's description included) and the committed SDL alike.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildClientSchema, buildSchema, getIntrospectionQuery, printSchema } from "graphql";
import { startAuthgraph } from "../support/start-authgraph.mjs";

let server;
before(async () => {
  server = await startAuthgraph();
});
after(() => server?.stop());

test("printSchema of the introspected schema equals printSchema of schema.graphql", async () => {
  const query = getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
    oneOf: true,
  });
  const response = await fetch(`${server.base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  assert.ok(body.data.__schema.description, "the schema has a description");
  const introspected = printSchema(buildClientSchema(body.data));
  const committed = printSchema(
    buildSchema(readFileSync(join(import.meta.dirname, "../../schema.graphql"), "utf8")),
  );
  assert.equal(introspected, committed);
});
