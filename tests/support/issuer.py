"""An in-process OIDC issuer for hostile tokens a real IdP will not mint.

HTTPS (own thread) serving discovery and a JWKS; mints tokens with any claims, alg, kid or key; can
rotate keys, go down, and counts fetches. Forged tokens (alg none, HS256 keyed with the public key,
tampered signatures) are built by hand here, because no library will make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support.certs import CertFiles

Key = RSAKey | ECKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg: str, kid: str) -> Key:
    if alg.startswith(("RS", "PS")):
        return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})
    curve = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
    return ECKey.generate_key(curve, parameters={"kid": kid, "use": "sig"})


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, certs: CertFiles, path: str = "") -> None:
        self.keys: dict[str, Key] = {}
        self.published: list[str] = []  # kids in the JWKS
        self.down = False
        self.discovery_overrides: dict[str, Any] = {}
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.extra_jwks: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if issuer.down:
                    self._send(500, {"error": "down"})
                elif self.path == f"{path}/.well-known/openid-configuration":
                    with issuer._lock:
                        issuer.discovery_fetches += 1
                    self._send(200, {**issuer.discovery(), **issuer.discovery_overrides})
                elif self.path == f"{path}/keys":
                    with issuer._lock:
                        issuer.jwks_fetches += 1
                    self._send(200, issuer.jwks())
                else:
                    self._send(404, {})

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert, certs.key)
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.ca_file = certs.ca
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.add_key("RS256", "key-1")

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # keys -------------------------------------------------------------------------------------------

    def add_key(self, alg: str, kid: str, *, publish: bool = True) -> Key:
        key = new_key(alg, kid)
        self.keys[kid] = key
        if publish:
            self.published.append(kid)
        return key

    def unpublish(self, kid: str) -> None:
        self.published.remove(kid)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/keys",
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
        }

    def jwks(self) -> dict[str, Any]:
        keys = [self.keys[k].as_dict(private=False) for k in self.published]
        return {"keys": keys + self.extra_jwks}

    # tokens -----------------------------------------------------------------------------------------

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": "kube",
            "sub": "alice",
            "email": "alice@example.com",
            "email_verified": True,
            "groups": ["dev", "ops"],
            "iat": now,
            "exp": now + 600,
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def mint(
        self, claims: dict[str, Any] | None = None, *, kid: str = "key-1", alg: str = "RS256", **header: Any
    ) -> str:
        key = self.keys[kid]
        return jwt.encode(
            {"alg": alg, "kid": kid, "typ": "JWT", **header}, claims or self.claims(), key, algorithms=[alg]
        )

    def mint_raw(self, payload: bytes, *, kid: str = "key-1", alg: str = "RS256") -> str:
        """A token whose payload is these bytes exactly (JSON a dict cannot be encoded to: lone surrogates)."""
        return jws.serialize_compact({"alg": alg, "kid": kid, "typ": "JWT"}, payload, self.keys[kid], algorithms=[alg])

    def token(self, **overrides: Any) -> str:
        """A valid token for ``self.claims(**overrides)`` signed with the default key."""
        return self.mint(self.claims(**overrides))

    @staticmethod
    def unsigned(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = header or {"alg": "none", "typ": "JWT"}
        return f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}."

    def hs256_with_public_key(self, claims: dict[str, Any], kid: str = "key-1") -> str:
        """The classic algorithm-confusion forgery: HMAC keyed with the RSA public key's PEM."""
        public_pem = self.keys[kid].as_pem(private=False)
        head = b64url(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64url(sig)}"
