// Starts the real authgraph binary for the JavaScript test suites: a fresh
// directory (so a fresh SQLite database and key), port 0, and the address read
// from its "listening on" log line.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

/** A free port on 127.0.0.1 (for a server whose address must be known before it starts). */
export async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

export const DEFAULT_BIN = resolve(import.meta.dirname, "../../target/debug/authgraph");

/**
 * @param {Record<string, string>} env settings on top of the defaults
 * @returns {Promise<{ base: string, dir: string, stop: () => void }>} base is
 *   `http://127.0.0.1:PORT`; dir its working directory (its database and keys)
 */
export async function startAuthgraph(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "authgraph-js-"));
  const server = spawn(process.env.AUTHGRAPH_BIN ?? DEFAULT_BIN, ["serve"], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      BIND_ADDR: "127.0.0.1:0",
      AUTH_RATE_LIMIT_PER_MINUTE: "0",
      RUST_LOG: "info",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stop = () => {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const base = await new Promise((ok, fail) => {
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
    return { base: /** @type {string} */ (base), dir, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

/**
 * Signs `username` up on the authgraph at `base` (password "correct horse
 * battery", email username@example.com); returns the AuthPayload's tokens and
 * user id, or throws with the answer.
 * @returns {Promise<{ accessToken: string, refreshToken: string | null, user: { id: string } }>}
 */
export async function signup(base, username) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: "mutation($i: SignupInput!) { signup(input: $i) { accessToken refreshToken user { id } } }",
      variables: { i: { username, email: `${username}@example.com`, password: "correct horse battery" } },
    }),
  });
  const body = await response.json();
  if (!body.data) throw new Error(`signup failed: ${JSON.stringify(body)}`);
  return body.data.signup;
}

/**
 * A real SMTP server (tests/support/smtp_sink.py under the Python with
 * aiosmtpd that AUTHGRAPH_TEST_SMTP_PYTHON names) writing each mail it takes
 * as JSON into a directory.
 * @returns {Promise<{ url: string, mails: () => Array<{ rcpt_tos: string[], text: string }>, stop: () => void }>}
 */
export async function startSmtpSink() {
  const python = process.env.AUTHGRAPH_TEST_SMTP_PYTHON;
  if (!python) throw new Error("set AUTHGRAPH_TEST_SMTP_PYTHON to a Python with aiosmtpd (.ci/run does)");
  const { readdirSync, readFileSync } = await import("node:fs");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "authgraph-smtp-"));
  const sink = spawn(python, [resolve(import.meta.dirname, "smtp_sink.py"), String(port), dir], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("the SMTP server did not start")), 30_000);
    createInterface({ input: sink.stdout }).on("line", (line) => {
      if (line.includes("smtp listening")) {
        clearTimeout(timer);
        ok();
      }
    });
    sink.on("exit", (code) => fail(new Error(`the SMTP server exited with ${code}`)));
  });
  const mails = () =>
    readdirSync(dir)
      .filter((name) => name.endsWith(".json"))
      .sort()
      .map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")));
  const stop = () => {
    sink.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `smtp://127.0.0.1:${port}`, mails, stop };
}
