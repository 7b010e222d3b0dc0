"""An in-process OIDC issuer for hostile tokens a real IdP will not mint.

HTTPS (own thread) serving discovery and a JWKS; mints tokens with any claims, alg, kid or key; can
rotate keys, go down, and counts fetches. It also signs users in without a page (``/auth`` redirects at once
with a code for ``login_claims``) and runs a token endpoint (authorization code with PKCE, refresh tokens),
with switches for what a hostile or broken provider does. Forged tokens (alg none, HS256 keyed with the public key,
tampered signatures) are built by hand here, because no library will make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
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


@dataclass
class Grant:
    """What a code (or a refresh token) was issued for."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]
    used: bool = False


@dataclass
class TokenEndpoint:
    """The token endpoint's state and switches (all changed by tests)."""

    client_secret: str | None = None  # set: client_secret_basic is required
    lifetime: int = 600  # of id_tokens, seconds
    down: bool = False  # answers 503
    id_token_claims: dict[str, Any] = field(default_factory=dict)  # overrides for minted id_tokens (nonce, aud)
    codes: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # forms as received
    authorizations: list[dict[str, str]] = field(default_factory=list)  # /auth queries as received


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
        self.login_claims: dict[str, Any] = {}  # who /auth signs in (overrides of claims())
        self.auth_error: str | None = None  # /auth redirects back with this error instead of a code
        self.token_endpoint = TokenEndpoint()
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
                elif self.path.startswith(f"{path}/auth?"):
                    query = dict(urllib.parse.parse_qsl(self.path.partition("?")[2]))
                    self.send_response(302)
                    self.send_header("Location", issuer.authorize(query))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path != f"{path}/token":
                    self._send(404, {})
                    return
                code, body = issuer.answer_token_request(form, self.headers.get("Authorization"))
                self._send(code, body)

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
            "authorization_endpoint": f"{self.url}/auth",
            "token_endpoint": f"{self.url}/token",
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
        }

    # signing in -------------------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """Sign ``login_claims`` in at once: the redirect back, with a code (or ``auth_error``)."""
        endpoint = self.token_endpoint
        with self._lock:
            endpoint.authorizations.append(query)
        back = query.get("redirect_uri", "")
        if self.auth_error is not None:
            params = {"error": self.auth_error, "error_description": "refused by the test issuer"}
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                endpoint.codes[code] = Grant(
                    client_id=query.get("client_id", ""),
                    redirect_uri=back,
                    challenge=query.get("code_challenge", ""),
                    nonce=query.get("nonce", ""),
                    claims=dict(self.login_claims),
                )
            params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        return f"{back}{'&' if '?' in back else '?'}{urllib.parse.urlencode(params)}"

    def answer_token_request(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The token endpoint: (status, JSON body)."""
        endpoint = self.token_endpoint
        with self._lock:
            endpoint.requests.append(form)
        if endpoint.down:
            return 503, {"error": "temporarily_unavailable"}
        client_id = form.get("client_id", "")
        if endpoint.client_secret is not None:  # client_secret_basic, as oidcclient sends it
            scheme, _, encoded = (authorization or "").partition(" ")
            if scheme != "Basic":
                return 401, {"error": "invalid_client", "error_description": "client authentication required"}
            name, _, secret = base64.b64decode(encoded).decode().partition(":")
            client_id = urllib.parse.unquote(name)
            if urllib.parse.unquote(secret) != endpoint.client_secret:
                return 401, {"error": "invalid_client"}
        with self._lock:
            if form.get("grant_type") == "authorization_code":
                grant = endpoint.codes.get(form.get("code", ""))
                if grant is None or grant.used:
                    return 400, {"error": "invalid_grant", "error_description": "code not valid"}
                grant.used = True
                verifier = form.get("code_verifier", "")
                challenge = b64url(hashlib.sha256(verifier.encode()).digest())
                if grant.redirect_uri != form.get("redirect_uri") or challenge != grant.challenge:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE or redirect_uri mismatch"}
            elif form.get("grant_type") == "refresh_token":
                grant = endpoint.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if grant is None:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token not valid"}
            else:
                return 400, {"error": "unsupported_grant_type"}
            if grant.client_id != client_id:
                return 400, {"error": "invalid_grant", "error_description": "issued to another client"}
            refresh_token = secrets.token_urlsafe(16)
            endpoint.refresh_tokens[refresh_token] = grant
        now = int(time.time())
        claims = self.claims(aud=grant.client_id, nonce=grant.nonce or None, iat=now, exp=now + endpoint.lifetime)
        claims.update(grant.claims)
        claims.update(endpoint.id_token_claims)
        return 200, {
            "id_token": self.mint({k: v for k, v in claims.items() if v is not None}),
            "access_token": "opaque",
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "expires_in": endpoint.lifetime,
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
