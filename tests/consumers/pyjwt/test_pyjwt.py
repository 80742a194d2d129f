"""A downstream Python service verifying authgraph's access tokens the way
PyJWT documents it: PyJWKClient fetches the JWKS and picks the key by the
token's kid, then jwt.decode checks signature, issuer and audience.

For each asymmetric algorithm the access token verifies; the refresh token
does not, even with the audience check off; another audience and a tampered
token are refused. Run: python -m unittest -v (AUTHGRAPH_BIN names the
binary; default target/debug/authgraph)."""

import base64
import json
import os
import re
import socket
import subprocess
import tempfile
import unittest
import urllib.request

import jwt
from jwt import PyJWKClient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("AUTHGRAPH_BIN", os.path.join(ROOT, "target", "debug", "authgraph"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Authgraph:
    """The real binary in a fresh directory, until stopped."""

    def __init__(self, **env):
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        settings = {
            "PATH": os.environ.get("PATH", ""),
            "BIND_ADDR": f"127.0.0.1:{self.port}",
            "PUBLIC_URL": self.base,
            "AUTH_RATE_LIMIT_PER_MINUTE": "0",
            "RUST_LOG": "info",
            **env,
        }
        self.process = subprocess.Popen(
            [BIN, "serve"], cwd=self.dir.name, env=settings, stderr=subprocess.PIPE, text=True
        )
        for line in self.process.stderr:
            if re.search(r"listening on http://", line):
                break
        else:
            raise RuntimeError("authgraph did not start")

    def signup(self, username):
        query = "mutation($i: SignupInput!) { signup(input: $i) { accessToken refreshToken user { id } } }"
        body = json.dumps(
            {
                "query": query,
                "variables": {
                    "i": {"username": username, "email": f"{username}@example.com", "password": "correct horse battery"}
                },
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.base}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)["data"]["signup"]

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.process.stderr.close()
        self.dir.cleanup()


def tamper(token):
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "ADMIN"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


class PyJWKClientVerifies(unittest.TestCase):
    def check(self, algorithm):
        server = Authgraph(JWT_ALGORITHM=algorithm)
        try:
            with urllib.request.urlopen(f"{server.base}/.well-known/openid-configuration") as response:
                discovery = json.load(response)
            client = PyJWKClient(discovery["jwks_uri"])
            tokens = server.signup(f"py{algorithm.lower()}")

            key = client.get_signing_key_from_jwt(tokens["accessToken"])
            claims = jwt.decode(
                tokens["accessToken"],
                key.key,
                algorithms=[algorithm],
                audience="authgraph",
                issuer=discovery["issuer"],
            )
            self.assertEqual(claims["sub"], tokens["user"]["id"])
            self.assertEqual(claims["typ"], "access")
            self.assertEqual(claims["role"], "USER")
            print(
                f"PyJWT {algorithm}: verified kid={key.key_id} sub={claims['sub']} "
                f"iss={claims['iss']} aud={claims['aud']} role={claims['role']}"
            )

            # The refresh token names no published key (HS256, no kid), and
            # no published key verifies it, audience check or not.
            with self.assertRaises(jwt.exceptions.PyJWKClientError) as refused:
                client.get_signing_key_from_jwt(tokens["refreshToken"])
            print(f"PyJWT {algorithm}: refresh token refused by the JWK client: {refused.exception}")
            for options in ({}, {"verify_aud": False}):
                with self.assertRaises(jwt.exceptions.InvalidTokenError) as refused:
                    jwt.decode(
                        tokens["refreshToken"],
                        key.key,
                        algorithms=[algorithm],
                        issuer=discovery["issuer"],
                        options=options,
                    )
                print(f"PyJWT {algorithm}: refresh token refused under the published key {options}: "
                      f"{type(refused.exception).__name__}")

            with self.assertRaises(jwt.exceptions.InvalidAudienceError):
                jwt.decode(tokens["accessToken"], key.key, algorithms=[algorithm], audience="another-service")
            with self.assertRaises(jwt.exceptions.InvalidSignatureError):
                jwt.decode(tamper(tokens["accessToken"]), key.key, algorithms=[algorithm], audience="authgraph")
        finally:
            server.stop()

    def test_eddsa(self):
        self.check("EdDSA")

    def test_es256(self):
        self.check("ES256")

    def test_rs256(self):
        self.check("RS256")


if __name__ == "__main__":
    unittest.main()
