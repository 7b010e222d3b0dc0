"""Hostile input is normal input: every bad token or malformed request gets a Kubernetes Status, an AuFail
line, and nothing is forwarded; the proxy keeps serving."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from typing import Any

import pytest

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server import timers
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream


def _bad_tokens(issuer: TestIssuer) -> dict[str, str]:
    now = int(time.time())
    good = issuer.claims()
    other = issuer.add_key("RS256", "unpublished", publish=False)
    assert other is not None
    valid = issuer.token()
    head, body, sig = valid.split(".")
    tampered_body = issuer.token(sub="mallory").split(".")[1]
    return {
        "expired": issuer.token(exp=now - 1),
        "not yet valid": issuer.token(nbf=now + 3600),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "issuer with trailing slash": issuer.token(iss=issuer.url + "/"),
        "wrong audience": issuer.token(aud="someone-else"),
        "no exp": issuer.token(exp=None),
        "alg none": issuer.unsigned(good),
        "alg none with kid": issuer.unsigned(good, {"alg": "none", "kid": "key-1"}),
        "HS256 keyed with the public key": issuer.hs256_with_public_key(good),
        "unknown kid": issuer.mint(good, kid="unpublished"),
        "tampered payload": f"{head}.{tampered_body}.{sig}",
        "tampered signature": f"{head}.{body}.{sig[:-4]}AAAA",
        "malformed": "not-a-jwt",
        "two segments": f"{head}.{body}",
        "JWE-shaped": "a.b.c.d.e",
        "missing username": issuer.token(sub=None),
        "empty username": issuer.token(sub=""),
        "non-string username": issuer.token(sub=42),
        "system username": issuer.token(sub="system:admin"),
        "system group": issuer.token(groups=["dev", "system:masters"]),
        "newline in username": issuer.token(sub="alice\r\nImpersonate-User: admin"),
        "groups not strings": issuer.token(groups=[1, 2]),
        "PS256 when only RS256 is allowed": issuer.mint(good, alg="PS256"),
    }


async def test_every_bad_token_is_a_401_status_with_an_aufail_line(proxy: ProxyHandle) -> None:
    for name, token in _bad_tokens(proxy.issuer).items():
        response = await get(proxy.port, proxy.ca_file, f"/api/v1/{name.replace(' ', '-')}", token=token)
        assert response.status == 401, name
        status = response.json()
        assert (status["kind"], status["apiVersion"], status["status"], status["code"]) == (
            "Status",
            "v1",
            "Failure",
            401,
        ), name
        assert status["reason"] == "Unauthorized", name
        assert token not in response.body.decode(), name
        await proxy.access.wait_for(f"AuFail src:[127.0.0.1 / ] URI:/api/v1/{name.replace(' ', '-')}")
    assert proxy.upstream.requests == []
    # and the proxy still serves a good token afterwards
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200


async def test_an_unverified_email_is_refused_when_email_is_the_username(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    handle = await start_proxy(replace(config, oidc=replace(config.oidc, username_claim="email")), issuer, upstream)
    try:
        refused = await get(handle.port, handle.ca_file, "/api", token=issuer.token(email_verified=False))
        assert refused.status == 401
        accepted = await get(handle.port, handle.ca_file, "/api", token=issuer.token())
        assert accepted.status == 200
        assert upstream.requests[-1].one("impersonate-user") == "alice@example.com"
        assert len(upstream.requests) == 1
    finally:
        await handle.running.stop(grace=1)


async def test_system_identities_are_accepted_only_when_allowed(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    cfg = replace(config, oidc=replace(config.oidc, allow_system_identities=True))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        response = await get(handle.port, handle.ca_file, "/api", token=issuer.token(groups=["system:masters"]))
        assert response.status == 200
        assert upstream.requests[-1].all("impersonate-group") == ["system:masters", "system:authenticated"]
    finally:
        await handle.running.stop(grace=1)


async def test_required_claims_are_enforced(issuer: TestIssuer, upstream: RecordingUpstream, config: Config) -> None:
    cfg = replace(config, oidc=replace(config.oidc, required_claims=(("tenant", "acme"),)))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        assert (await get(handle.port, handle.ca_file, "/a", token=issuer.token())).status == 401
        assert (await get(handle.port, handle.ca_file, "/a", token=issuer.token(tenant="evil"))).status == 401
        assert (await get(handle.port, handle.ca_file, "/a", token=issuer.token(tenant="acme"))).status == 200
        assert len(upstream.requests) == 1
    finally:
        await handle.running.stop(grace=1)


async def test_missing_or_malformed_authorization_is_a_401(proxy: ProxyHandle) -> None:
    cases: list[list[tuple[str, str]]] = [
        [],
        [("authorization", "Basic YWxpY2U6cHc=")],
        [("authorization", "Bearer")],
        [("authorization", "Bearer a b")],
        [("authorization", f"Bearer {proxy.issuer.token()}"), ("authorization", f"Bearer {proxy.issuer.token()}")],
    ]
    for headers in cases:
        response = await get(proxy.port, proxy.ca_file, "/api", headers=headers)
        assert response.status == 401, headers
    assert proxy.upstream.requests == []


RAW_ATTACKS: dict[str, bytes] = {
    "content-length with transfer-encoding": (
        b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x"
    ),
    "duplicate content-length": b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "obs-fold": b"GET /api HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "NUL in a value": b"GET /api HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bare CR in a value": b"GET /api HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bare LF line ends": b"GET /api HTTP/1.1\nHost: x\n\n",
    "bad request line": b"GET /api HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    "unknown method": b"FOO /api HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-form target": b"GET http://evil/api HTTP/1.1\r\nHost: x\r\n\r\n",
    "no host": b"GET /api HTTP/1.1\r\n\r\n",
    "two hosts": b"GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "transfer-encoding gzip": b"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "space before colon": b"GET /api HTTP/1.1\r\nHost : x\r\n\r\n",
    "CONNECT": b"CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    "upgrade with a body": (
        b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 3\r\n\r\nabc"
    ),
}


@pytest.mark.parametrize("name", sorted(RAW_ATTACKS))
async def test_malformed_http_is_a_400_status_and_the_connection_closes(proxy: ProxyHandle, name: str) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(RAW_ATTACKS[name])
        raw = await client.read_until_closed()
    finally:
        await client.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"405", b"501"), raw
    assert b"Connection: close" in head
    status: dict[str, Any] = __import__("json").loads(body)
    assert status["kind"] == "Status" and status["code"] in (400, 405, 501)
    assert proxy.upstream.requests == []
    await proxy.access.wait_for("AuFail")


async def test_a_64_kib_token_works_and_an_oversized_head_is_a_431(proxy: ProxyHandle) -> None:
    big_token = proxy.issuer.token(padding="p" * 48 * 1024)
    assert len(big_token) > 64 * 1024
    assert (await get(proxy.port, proxy.ca_file, "/api", token=big_token)).status == 200

    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(b"GET /api HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (300 * 1024) + b"\r\n\r\n")
        raw = await client.read_until_closed()
    finally:
        await client.close()
    assert raw.startswith(b"HTTP/1.1 431 ")
    assert b'"reason":"RequestHeaderFieldsTooLarge"' in raw
    assert len(proxy.upstream.requests) == 1


async def test_too_many_headers_is_a_431(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(b"GET /api HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 300 + b"\r\n")
        raw = await client.read_until_closed()
    finally:
        await client.close()
    assert raw.startswith(b"HTTP/1.1 431 ")


async def test_a_slow_client_is_cut_off_after_the_header_timeout(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timers, "HEADER_TIMEOUT_SECONDS", 0.3)
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(b"GET /api HTTP/1.1\r\nHost: x\r\n")
        raw = await asyncio.wait_for(client.read_until_closed(), 5)
    finally:
        await client.close()
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert proxy.upstream.requests == []


async def test_an_idle_keep_alive_connection_is_closed(proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timers, "IDLE_TIMEOUT_SECONDS", 0.3)
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        assert await asyncio.wait_for(client.read_until_closed(), 5) == b""
    finally:
        await client.close()


async def test_plain_http_on_the_tls_port_does_not_hurt_the_proxy(proxy: ProxyHandle) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 15)
    except ConnectionError:
        answer = b""
    writer.close()
    assert not answer.startswith(b"HTTP/")  # a TLS alert or a plain close, never a proxied answer
    assert proxy.upstream.requests == []
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200


async def test_a_client_that_disconnects_mid_request_does_not_affect_others(proxy: ProxyHandle) -> None:
    ctx = ssl.create_default_context(cafile=proxy.ca_file)
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=ctx, server_hostname="localhost")
        writer.write(b"PUT /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial")
        writer.transport.abort()
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200


async def test_request_trailers_cannot_smuggle_an_identity(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(
            b"POST /echo-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + proxy.issuer.token().encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"
            b"0\r\nImpersonate-User: admin\r\nAuthorization: Bearer x\r\n\r\n"
        )
        response = await client.read_raw_response()
    finally:
        await client.close()
    assert response.status == 200 and response.body == b"hi"
    seen = proxy.upstream.requests[-1]
    assert seen.all("impersonate-user") == ["alice"]
    assert len(seen.all("authorization")) == 1
