"""Requests through the proxy: what kube-apiserver receives, and what the client gets back."""

from __future__ import annotations

import asyncio
import tracemalloc
from dataclasses import replace

from kube_oidc_proxy.config import Config
from tests.conftest import PROXY_SA_TOKEN, ProxyHandle, start_proxy
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream


async def test_the_caller_is_impersonated_and_the_proxy_authenticates_as_itself(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token(jti="id-1"))
    assert response.status == 200
    seen = proxy.upstream.requests[-1]
    assert seen.all("authorization") == [f"Bearer {PROXY_SA_TOKEN}"]
    assert seen.one("impersonate-user") == "alice"
    assert seen.all("impersonate-group") == ["dev", "ops", "system:authenticated"]
    assert seen.all("impersonate-extra-authentication.kubernetes.io%2Fcredential-id") == ["JTI=id-1"]
    assert seen.one("host") == f"127.0.0.1:{proxy.upstream.port}"


async def test_username_and_groups_prefixes_are_applied(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    cfg = replace(config, oidc=replace(config.oidc, username_prefix="oidc:", groups_prefix="idp:"))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        seen = upstream.requests[-1]
        assert seen.one("impersonate-user") == "oidc:alice"
        assert seen.all("impersonate-group") == ["idp:dev", "idp:ops", "system:authenticated"]
    finally:
        await handle.running.stop(grace=1)


async def test_extra_user_headers_and_client_ip_become_impersonated_extras(
    issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    # The Go proxy's e2e "headers" case: --extra-user-header-client-ip --extra-user-headers=key1=foo,key2=foo,key1=bar
    cfg = replace(
        config,
        proxy=replace(
            config.proxy,
            extra_user_header_client_ip=True,
            extra_user_headers=(("key1", ("foo", "bar")), ("key2", ("foo",))),
        ),
    )
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        seen = upstream.requests[-1]
        extras = [(n, v) for n, v in seen.headers if n.startswith("impersonate-extra-")]
        assert sorted(extras) == [
            ("impersonate-extra-key1", "bar"),
            ("impersonate-extra-key1", "foo"),
            ("impersonate-extra-key2", "foo"),
            ("impersonate-extra-remote-client-ip", "127.0.0.1"),
        ]
    finally:
        await handle.running.stop(grace=1)


async def test_no_extras_are_sent_by_default(proxy: ProxyHandle) -> None:
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200
    assert not [n for n, _ in proxy.upstream.requests[-1].headers if n.startswith("impersonate-extra-")]


async def test_client_credentials_and_identity_headers_never_reach_the_api_server(proxy: ProxyHandle) -> None:
    headers = [
        ("x-remote-user", "admin"),
        ("X-Remote-Group", "system:masters"),
        ("proxy-authorization", "Basic eDp5"),
        ("connection", "keep-alive, x-secret"),
        ("x-secret", "hop-by-hop"),
        ("keep-alive", "timeout=5"),
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ("x-forwarded-for", "203.0.113.9"),
    ]
    response = await get(proxy.port, proxy.ca_file, "/api?x=1&y=2", token=proxy.issuer.token(), headers=headers)
    assert response.status == 200
    seen = proxy.upstream.requests[-1]
    names = [n for n, _ in seen.headers]
    for forbidden in ("x-remote-user", "x-remote-group", "proxy-authorization", "x-secret", "keep-alive", "connection"):
        assert forbidden not in names
    assert seen.all("authorization") == [f"Bearer {PROXY_SA_TOKEN}"]
    assert seen.all("x-stream-protocol-version") == ["v4.channel.k8s.io", "v3.channel.k8s.io"]
    assert seen.one("x-forwarded-for") == "127.0.0.1"  # the client is not a trusted proxy: its word is not taken
    assert seen.target == "/api?x=1&y=2"


async def test_an_unauthenticated_impersonation_attempt_is_a_401_not_a_403(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/api", headers=[("impersonate-user", "admin")])
    assert response.status == 401
    assert proxy.upstream.requests == []


async def test_request_bodies_are_forwarded_byte_exact(proxy: ProxyHandle) -> None:
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # a 5 MiB apply
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        response = await client.request("PUT", "/echo-body", body=body, token=proxy.issuer.token())
        assert response.status == 200
        assert response.body == body
        assert proxy.upstream.requests[-1].one("content-length") == str(len(body))
    finally:
        await client.close()


async def test_a_chunked_request_body_is_forwarded_chunked(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        await client.send_raw(
            b"POST /echo-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        response = await client.read_raw_response()
        assert response.status == 200 and response.body == b"hello world"
        assert proxy.upstream.requests[-1].one("transfer-encoding") == "chunked"
    finally:
        await client.close()


async def test_a_50_megabyte_body_is_streamed_not_held_in_memory(proxy: ProxyHandle) -> None:
    size = 50 * 1024 * 1024
    piece = b"\xab" * 65536
    client = await Client.connect(proxy.port, proxy.ca_file)
    head = (
        f"PUT /discard-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {proxy.issuer.token()}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    tracemalloc.start()
    try:
        await client.send_raw(head)
        for _ in range(size // len(piece)):
            client.writer.write(piece)
            await client.writer.drain()
        response = await client.read_raw_response(timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await client.close()
    assert response.status == 200 and response.json() == {"bytes": size}
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes while streaming {size}"


async def test_large_and_chunked_and_close_delimited_responses_arrive_intact(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        big = await client.request("GET", "/big/5000000", token=token)
        assert big.status == 200 and big.body == b"x" * 5_000_000
        assert big.header("content-length") == "5000000"
        chunked = await client.request("GET", "/chunked/50", token=token)
        assert chunked.body == b"".join(f"chunk-{i}\n".encode() for i in range(50))
        assert chunked.header("transfer-encoding") == "chunked"
        until_close = await client.request("GET", "/close-delimited", token=token)
        assert until_close.body == b"until-close-body"
        assert until_close.header("transfer-encoding") == "chunked"  # re-framed so the client can keep its connection
        again = await client.request("GET", "/api", token=token)
        assert again.status == 200
    finally:
        await client.close()


async def test_head_and_no_content_responses_have_no_body_and_keep_the_connection(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        head = await client.request("HEAD", "/api/v1/pods", token=token)
        assert head.status == 200 and head.body == b"" and head.header("content-length") == "1234"
        no_content = await client.request("GET", "/status/204", token=token)
        assert no_content.status == 204 and no_content.body == b""
        after = await client.request("GET", "/api", token=token)
        assert after.status == 200
    finally:
        await client.close()


async def test_keep_alive_reuses_one_upstream_connection(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token()
    try:
        for i in range(5):
            assert (await client.request("GET", f"/api/{i}", token=token)).status == 200
    finally:
        await client.close()
    assert proxy.upstream.connections == 1


async def test_pipelined_requests_are_answered_in_order(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    token = proxy.issuer.token().encode()
    try:
        one = b"GET /slow/0.2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n\r\n"
        two = b"GET /second HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n\r\n"
        await client.send_raw(one + two)
        first = await client.read_raw_response()
        second = await client.read_raw_response()
        assert first.json() == {"slow": True}
        assert second.json()["path"] == "/second"
    finally:
        await client.close()


async def test_expect_100_continue_is_answered_after_authentication(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(
            f"PUT /echo-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {proxy.issuer.token()}\r\n"
            "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        await client.send_raw(b"hello")
        response = await client.read_raw_response()
        assert response.status == 200 and response.body == b"hello"
        assert proxy.upstream.requests[-1].one("expect") is None
    finally:
        await client.close()


async def test_expect_100_continue_without_a_valid_token_never_invites_the_body(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(
            b"PUT /echo-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
            b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        raw = await client.read_until_closed()
        assert raw.startswith(b"HTTP/1.1 401 ")
        assert b"100 Continue" not in raw
        assert b"Connection: close" in raw
    finally:
        await client.close()
    assert proxy.upstream.requests == []


async def test_api_server_responses_are_relayed_unchanged(proxy: ProxyHandle) -> None:
    for code in (403, 404, 409, 500):
        response = await get(proxy.port, proxy.ca_file, f"/status/{code}", token=proxy.issuer.token())
        assert response.status == code
        assert response.json() == {"kind": "Status", "code": code}
