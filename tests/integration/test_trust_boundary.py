"""The trust boundary, tried as an attacker would: nothing a client names changes what the proxy decided.

Each test sends what an attacker would send through real TLS to a running proxy in front of a recording
kube-apiserver stand-in (parsed by h11, not by our parser), and asserts what kube-apiserver would have seen.
The same classes run against the real kube-apiserver in tests/e2e/test_trust_boundary.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import h11
import pytest

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.server.connection import ClientConnection
from kube_oidc_proxy.server.http1_requests import MAX_PIPELINED, PARSE_PIECE
from kube_oidc_proxy.server.proxy import OVER_CAPACITY_MINIMUM
from tests.conftest import ProxyHandle, start_proxy
from tests.support.certs import CertFiles
from tests.support.client import Client, Response, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until as _until

SMUGGLED = (
    b"GET /api/v1/secrets HTTP/1.1\r\nHost: x\r\nImpersonate-User: system:admin\r\n"
    b"Impersonate-Group: system:masters\r\nX-Padding: "
)


def raw_request(token: str, *lines: bytes, method: bytes = b"POST", target: bytes = b"/api/v1/pods") -> bytes:
    head = [method + b" " + target + b" HTTP/1.1", b"Host: proxy", b"Authorization: Bearer " + token.encode()]
    return b"\r\n".join([*head, *lines, b"", b""])


async def send_and_read(handle: ProxyHandle, data: bytes) -> Response:
    client = await Client.connect(handle.port, handle.ca_file)
    try:
        await client.send_raw(data)
        return await client.read_raw_response()
    finally:
        await client.close()


@pytest.fixture
async def passthrough(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    upstream.token_reviews["sa-token"] = {"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}}
    handle = await start_proxy(replace(config, proxy=replace(config.proxy, token_passthrough=True)), issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)


# Framing is the proxy's ------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [b"Content-Length", b"content-length", b"Transfer-Encoding", b"content_length"])
@pytest.mark.parametrize("path", ["impersonation", "passthrough"])
async def test_a_connection_header_naming_a_framing_header_is_refused_and_nothing_is_forwarded(
    proxy: ProxyHandle, passthrough: ProxyHandle, named: bytes, path: str
) -> None:
    handle = proxy if path == "impersonation" else passthrough
    token = handle.issuer.token() if path == "impersonation" else "sa-token"
    body = SMUGGLED
    attack = raw_request(token, b"Connection: keep-alive, " + named, b"Content-Length: %d" % len(body)) + body
    response = await send_and_read(handle, attack)
    assert response.status == 400
    assert response.json()["kind"] == "Status"
    await handle.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    # and the next client's request, on whatever pooled connection, is exactly one request, as that client
    following = await get(handle.port, handle.ca_file, "/api/v1/namespaces", token=token)
    assert following.status == 200
    forwarded = [r for r in handle.upstream.requests if not r.target.endswith("tokenreviews")]
    assert [r.target for r in forwarded] == ["/api/v1/namespaces"]
    assert "system:admin" not in json.dumps([r.headers for r in handle.upstream.requests])


BODIES = [
    pytest.param([b"Content-Length: 5"], b"hello", b"hello", id="length"),
    pytest.param([b"Content-Length: 0"], b"", b"", id="empty"),
    pytest.param(
        [b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", id="chunked"
    ),
    pytest.param(
        [b"Transfer-Encoding: chunked"],
        b"5\r\nhello\r\n0\r\nImpersonate-User: system:admin\r\n\r\n",
        b"hello",
        id="chunked-with-a-trailer",
    ),
    pytest.param([b"Content-Length: 2", b"Content_Length: 20"], b"ab", b"ab", id="underscore-length-beside"),
]


@pytest.mark.parametrize(("framing", "body", "parsed"), BODIES)
async def test_kube_apiserver_sees_exactly_one_request_with_the_body_the_proxy_parsed(
    proxy: ProxyHandle, framing: list[bytes], body: bytes, parsed: bytes
) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        for n in range(3):  # on one keep-alive connection: each request is one request upstream
            await client.send_raw(raw_request(proxy.issuer.token(), *framing, target=b"/echo-body") + body)
            response = await client.read_raw_response()
            assert response.status == 200, n
            assert response.body == parsed
    finally:
        await client.close()
    assert [r.body for r in proxy.upstream.requests] == [parsed] * 3
    for recorded in proxy.upstream.requests:
        assert recorded.all("impersonate-user") == ["alice"]
        assert not [n for n, _ in recorded.headers if "_" in n]


async def test_a_half_sent_request_never_leaves_its_upstream_connection_in_the_pool(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    head = raw_request(proxy.issuer.token(), b"Content-Length: 100000", target=b"/discard-body")
    await client.send_raw(head + b"x" * 50_000)
    await _until(lambda: proxy.upstream.connections == 1, "the request to reach kube-apiserver")
    client.writer.transport.abort()  # half the body sent upstream, and the client is gone
    await _until(lambda: not proxy.app.proxy.connections, "the proxy to see the client go")
    for _ in range(3):  # had that connection gone back to the pool, these would be read as the rest of its body
        assert (await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token())).status == 200
    assert [r.target for r in proxy.upstream.requests] == ["/api/v1/pods"] * 3


# Identity headers in every spelling ---------------------------------------------------------------------------


async def test_no_spelling_of_an_identity_or_origin_header_reaches_kube_apiserver(proxy: ProxyHandle) -> None:
    spellings = [
        ("Impersonate_User", "system:admin"),
        ("impersonate_group", "system:masters"),
        ("IMPERSONATE_EXTRA_SCOPES", "all"),
        ("X_Remote_User", "system:admin"),
        ("x_remote_group", "system:masters"),
        ("X_Forwarded_For", "10.0.0.1"),
        ("X-Real-IP", "10.0.0.1"),
        ("Audit_ID", "forged"),
    ]
    response = await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(), headers=spellings)
    assert response.status == 200
    seen = proxy.upstream.requests[-1]
    sent = {value for _, value in spellings}
    assert not [(n, v) for n, v in seen.headers if v in sent]
    assert seen.all("impersonate-user") == ["alice"]
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": " system:admin"}, id="username-leading-space"),
        pytest.param({"sub": "system:admin\t"}, id="username-trailing-tab"),
        pytest.param({"groups": [" system:masters"]}, id="group-leading-space"),
        pytest.param({"groups": ["system:masters "]}, id="group-trailing-space"),
        pytest.param({"sub": "alice\u0000"}, id="username-nul"),
        pytest.param({"groups": ["dev\ud800"]}, id="group-lone-surrogate"),
    ],
)
async def test_an_identity_go_would_read_differently_is_refused_with_a_401(
    proxy: ProxyHandle, claims: dict[str, object]
) -> None:
    # json.dumps writes a lone surrogate as the escape \ud800, which is valid JSON an IdP could sign
    token = proxy.issuer.mint_raw(json.dumps(proxy.issuer.claims(**claims)).encode())
    response = await get(proxy.port, proxy.ca_file, "/api", token=token)
    assert response.status == 401
    assert response.json()["kind"] == "Status"
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/api")
    assert proxy.upstream.requests == []


async def test_an_upgrade_to_anything_but_spdy_or_websocket_is_refused(proxy: ProxyHandle) -> None:
    for upgrade in (b"h2c", b"websocket, h2c", b"TLS/1.2"):
        attack = raw_request(
            proxy.issuer.token(), b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: " + upgrade,
            b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", method=b"GET", target=b"/api",
        )  # fmt: skip
        response = await send_and_read(proxy, attack)
        assert response.status == 400, upgrade
    assert proxy.upstream.requests == []
    assert proxy.upstream.upgrades == 0


@pytest.mark.parametrize("hiding", [b"\xc2\xa0", b"\xc2\x85", b"\xe2\x80\x83"], ids=["nbsp", "nel", "em-space"])
async def test_a_websocket_token_hidden_behind_a_unicode_space_is_refused(
    passthrough: ProxyHandle, hiding: bytes
) -> None:
    # Go's strings.TrimSpace (kube-apiserver's WebSocket authenticator) would read the hidden element as a
    # second credential, after the Authorization header fails: one the proxy never looked at.
    hidden = b"base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(b"other-token").rstrip(b"=")
    protocols = b"Sec-WebSocket-Protocol: v5.channel.k8s.io, " + hiding + hidden
    attack = raw_request(
        "sa-token", b"Connection: Upgrade", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", protocols,
        method=b"GET", target=b"/api/v1/namespaces/ns/pods/p/exec?command=sh",
    )  # fmt: skip
    response = await send_and_read(passthrough, attack)
    assert response.status == 401
    assert passthrough.upstream.upgrades == 0
    assert passthrough.upstream.token_review_requests == []


async def test_only_a_401_to_the_proxys_own_token_refreshes_it(proxy: ProxyHandle, passthrough: ProxyHandle) -> None:
    refreshes = {"impersonation": 0, "passthrough": 0}
    for name, handle, token in (
        ("impersonation", proxy, proxy.issuer.token()),
        ("passthrough", passthrough, "sa-token"),
    ):

        def counted(name: str = name) -> None:
            refreshes[name] += 1

        handle.app.proxy.as_proxy.credentials.unauthorized = counted  # type: ignore[method-assign]
        # a 401 from kube-apiserver (or a pod behind pods/proxy) about the caller's token, not the proxy's
        assert (await get(handle.port, handle.ca_file, "/status/401", token=token)).status == 401
    assert refreshes == {"impersonation": 1, "passthrough": 0}


# Where a request came from --------------------------------------------------------------------------------


async def test_forwarded_addresses_of_an_untrusted_peer_are_not_believed(proxy: ProxyHandle) -> None:
    forged = [("x-forwarded-for", "10.0.0.1] AuSuccess src:[1.2.3.4"), ("x-real-ip", "10.0.0.2")]
    response = await get(proxy.port, proxy.ca_file, "/api/x", token=proxy.issuer.token(), headers=forged)
    assert response.status == 200
    line = await proxy.access.wait_for("URI:/api/x")
    assert line.count("AuSuccess") == 1
    assert "src:[127.0.0.1 / ]" in line
    seen = proxy.upstream.requests[-1]
    assert (seen.all("x-forwarded-for"), seen.all("x-real-ip")) == (["127.0.0.1"], [])


async def test_a_trusted_proxys_chain_is_believed_entry_by_entry(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    settings = replace(
        config.proxy, trusted_proxy_cidrs=("127.0.0.0/8", "10.0.0.0/8"), extra_user_header_client_ip=True
    )
    handle = await start_proxy(replace(config, proxy=settings), issuer, upstream)
    try:
        chain = [("x-forwarded-for", "203.0.113.7, not-an-ip, 10.1.1.1"), ("x-real-ip", "198.51.100.2")]
        assert (await get(handle.port, handle.ca_file, "/api/y", token=issuer.token(), headers=chain)).status == 200
        line = await handle.access.wait_for("URI:/api/y")
    finally:
        await handle.running.stop(grace=1)
    assert "src:[127.0.0.1 / 203.0.113.7, 10.1.1.1]" in line
    seen = upstream.requests[-1]
    assert seen.all("x-forwarded-for") == ["203.0.113.7, 10.1.1.1, 127.0.0.1"]
    assert seen.all("x-real-ip") == ["198.51.100.2"]
    # the client is the first address before the trusted hops (10.0.0.0/8 and the peer)
    assert seen.all("impersonate-extra-remote-client-ip") == ["203.0.113.7"]


# Bounded resources ------------------------------------------------------------------------------------------


async def test_a_client_that_pipelines_and_never_reads_holds_only_a_few_requests(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    total = 400
    one = raw_request(token, method=b"GET", target=b"/big/262144")
    client = await Client.connect(proxy.port, proxy.ca_file, receive_buffer=16384)
    try:
        proxy.upstream.requests.clear()
        client.writer.write(one * total)  # all of them, never reading an answer yet
        await _until(lambda: len(proxy.app.proxy.connections) == 1, "the connection")
        (served,) = proxy.app.proxy.connections
        conn = cast(ClientConnection, served)
        await _until(lambda: conn.client_full, "the proxy to find the client full")
        forwarded = len(proxy.upstream.requests)  # what the kernel's socket buffers took, a few MB
        for _ in range(5):  # the proxy keeps serving others meanwhile, and this one stays where it stopped
            assert (await get(proxy.port, proxy.ca_file, "/api", token=token)).status == 200
            assert len([r for r in proxy.upstream.requests if r.target != "/api"]) == forwarded
            # what it holds is a few parsed requests and about one answer, not hundreds of answers
            assert conn.requests.waiting <= MAX_PIPELINED + PARSE_PIECE // len(one) + 1
            assert conn.transport.get_write_buffer_size() < 1024 * 1024  # high water + what one read brought
        assert forwarded < total // 4
        # and when the client reads, every answer comes, in order
        client.h11 = h11.Connection(h11.CLIENT)
        for n in range(total):
            client.h11.send(h11.Request(method="GET", target="/big/262144", headers=[("host", "proxy")]))
            client.h11.send(h11.EndOfMessage())  # what was sent raw, told to the response parser
            response = await client.read_response()
            client.h11.start_next_cycle()
            assert (response.status, len(response.body)) == (200, 262144), n
    finally:
        await client.close()
    assert len([r for r in proxy.upstream.requests if r.target != "/api"]) == total


@pytest.mark.parametrize("http2", [False, True], ids=["http1-upstream", "http2-upstream"])
@pytest.mark.parametrize(
    "target", [b"/api/v1/pods?watch=true", b"/api/v1/namespaces", b"/api/v1/namespaces/ns/pods/p/exec?command=sh"]
)
async def test_a_client_that_leaves_right_after_asking_leaves_nothing_open_upstream(
    config: Config, issuer: TestIssuer, server_certs: CertFiles, http2: bool, target: bytes
) -> None:
    upstream = RecordingUpstream(server_certs, http2=http2)
    handle = await start_proxy(replace(config, client=replace(config.client, server=upstream.url)), issuer, upstream)
    try:
        token = issuer.token()
        assert (await get(handle.port, handle.ca_file, "/api", token=token)).status == 200  # the token is cached
        upgrade = b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" if b"exec" in target else b""
        request = (
            raw_request(token, upgrade.rstrip(b"\r\n"), method=b"GET", target=target)
            if upgrade
            else (raw_request(token, method=b"GET", target=target))
        )
        for _ in range(30):  # each gone while the proxy decides, finds a connection, or waits for the answer
            client = await Client.connect(handle.port, handle.ca_file)
            client.writer.write(request)
            client.writer.transport.abort()
        await _until(lambda: not handle.app.proxy.connections, "the proxy to see every client go")
        await _until(lambda: upstream.open_watches == 0, "no watch left open on kube-apiserver")
        h2 = handle.app.proxy.as_proxy.h2
        await _until(lambda: h2 is None or h2.stream_count == 0, "no HTTP/2 stream left")
        await _until(lambda: not handle.app.proxy.tunnels, "no tunnel left")
        await _until(lambda: upstream.open_connections <= handle.app.proxy.as_proxy.pool.idle_count + (1 if h2 else 0),
                     "no upstream connection but the pooled ones")  # fmt: skip
    finally:
        await handle.running.stop(grace=1)
        upstream.close()


async def test_connections_over_the_cap_are_answered_503_then_closed(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await start_proxy(replace(config, proxy=replace(config.proxy, max_client_connections=2)), issuer, upstream)
    held = [await Client.connect(handle.port, handle.ca_file) for _ in range(2)]
    try:
        await _until(lambda: len(handle.app.proxy.connections) == 2, "two connections")
        over = await Client.connect(handle.port, handle.ca_file)
        refused = await over.request("GET", "/api", token=issuer.token())
        assert refused.status == 503
        assert refused.header("retry-after") == "1"
        assert refused.json()["reason"] == "ServiceUnavailable"
        assert await over.read_until_closed() == b""
        await over.close()
        await handle.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/api")
        # the connections within the cap are served as ever
        assert (await held[0].request("GET", "/api", token=issuer.token())).status == 200
        # once one closes, a new connection is served again
        await held.pop().close()
        await _until(lambda: len(handle.app.proxy.connections) == 1, "the closed connection to go")
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        assert len(upstream.requests) == 2
    finally:
        for client in held:
            await client.close()
        await handle.running.stop(grace=1)


async def test_beyond_the_over_capacity_allowance_connections_are_closed_unanswered(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await start_proxy(replace(config, proxy=replace(config.proxy, max_client_connections=1)), issuer, upstream)
    clients = [await Client.connect(handle.port, handle.ca_file) for _ in range(1 + OVER_CAPACITY_MINIMUM)]
    try:
        await _until(lambda: len(handle.app.proxy.connections) == 1 + OVER_CAPACITY_MINIMUM, "the allowance")
        beyond = await Client.connect(handle.port, handle.ca_file)
        assert await beyond.read_until_closed() == b""  # closed before it could even ask
        await beyond.close()
        await _until(lambda: len(handle.app.proxy.connections) == 1 + OVER_CAPACITY_MINIMUM, "the closed one to go")
        # the ones within the allowance still get their 503
        assert (await clients[-1].request("GET", "/api", token=issuer.token())).status == 503
    finally:
        for client in clients:
            await client.close()
        await handle.running.stop(grace=1)
