"""Test doubles for the authn unit tests: an in-memory issuer behind a fake ``fetcher``, and token minting.

No sockets: ``FakeIssuer`` is the ``fetcher`` coroutine a ``KeySource`` calls, serving a discovery document and a
JWKS from dictionaries the test edits, counting every request, and optionally holding requests until released.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any, Final

from joserfc import jwt

from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import ClaimMapping, JWTAuthenticatorSpec
from kube_oidc_proxy.httpclient import FetchResponse
from tests.support.issuer import Key

ISSUER: Final = "https://issuer.example"
AUDIENCE: Final = "kube"
NOW: Final = 1_700_000_000.0


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def segment(value: Any) -> bytes:
    """base64url(JSON(value)) without padding: one segment of a compact JWS."""
    return b64url(json.dumps(value).encode())


def json_response(body: Any, status: int = 200) -> FetchResponse:
    return FetchResponse(status, [(b"content-type", b"application/json")], json.dumps(body).encode())


def base_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": int(NOW) + 600,
        "iat": int(NOW),
        "groups": ["dev", "ops"],
    }
    claims.update(overrides)
    return claims


def spec(**overrides: Any) -> JWTAuthenticatorSpec:
    fields: dict[str, Any] = {
        "issuer_url": ISSUER,
        "audiences": (AUDIENCE,),
        "username": ClaimMapping("sub"),
        "groups": ClaimMapping("groups"),
    }
    fields.update(overrides)
    return JWTAuthenticatorSpec(**fields)


def sign(key: Key, claims: dict[str, Any], alg: str, *, kid: str | None = None, with_kid: bool = True) -> bytes:
    """A compact JWS of ``claims`` signed by ``key``; the header names ``kid`` (default: the key's) unless told not."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if with_kid:
        header["kid"] = kid if kid is not None else key.kid
    return jwt.encode(header, claims, key, algorithms=[alg]).encode()


class FakeIssuer:
    """The ``fetcher`` of a ``KeySource``: discovery and JWKS from dictionaries, every request counted."""

    def __init__(self, issuer_url: str = ISSUER) -> None:
        self.issuer_url = issuer_url
        self.discovery: dict[str, Any] = {"issuer": issuer_url, "jwks_uri": issuer_url + "/keys"}
        self.jwks: dict[str, Any] = {"keys": []}
        self.responses: dict[str, FetchResponse | BaseException] = {}  # per-URL overrides
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None  # when set, requests wait for it

    @property
    def discovery_url(self) -> str:
        return self.issuer_url + "/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return self.issuer_url + "/keys"

    def publish(self, *keys: Key) -> None:
        self.jwks = {"keys": [k.as_dict(private=False) for k in keys]}

    def count(self, url: str) -> int:
        return self.calls.count(url)

    async def __call__(self, url: str) -> FetchResponse:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        override = self.responses.get(url)
        if isinstance(override, BaseException):
            raise override
        if override is not None:
            return override
        if url == self.discovery_url:
            return json_response(self.discovery)
        if url == self.jwks_url:
            return json_response(self.jwks)
        return json_response({}, status=404)

    def key_source(self, **kwargs: Any) -> KeySource:
        return KeySource(self.issuer_url, ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), fetcher=self, **kwargs)
