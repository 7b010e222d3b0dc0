"""Pipelined requests and where a connection's requests end, byte by byte through a real TLS socket.

Go's server (kube-apiserver) reads one request at a time: it answers each before it reads the next, so a
request refused by the parser is answered after the ones before it, and after a request that closes the
connection it reads nothing more. The proxy must not be weaker: a valid request before a malformed one is
answered (not lost in a 400), and nothing after ``Connection: close`` is parsed, answered or forwarded.
Responses are read back by h11, not by the proxy's parser.
"""

from __future__ import annotations

import asyncio

import h11
import pytest

from tests.conftest import ProxyHandle
from tests.support.client import Client, Response
from tests.support.waiting import until

BEARER = "Authorization: Bearer {token}\r\n"


def get(target: str, token: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {target} HTTP/{version}", "Host: proxy", BEARER.format(token=token).strip(), *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def responses_in(data: bytes) -> list[Response]:
    """Every response in ``data`` (all the proxy wrote before it closed), parsed by h11; after one that closes
    the connection there must be nothing."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    out: list[Response] = []
    while True:
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        status, headers, body = 0, [], bytearray()
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = [(n.decode(), v.decode("latin-1")) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append(Response(status, headers, bytes(body)))
                break
            else:
                assert isinstance(event, h11.ConnectionClosed), event
                return out
        if conn.their_state is h11.MUST_CLOSE:
            assert conn.trailing_data == (b"", True), f"written after a closing response: {conn.trailing_data}"
            return out
        conn.start_next_cycle()


async def exchange(handle: ProxyHandle, data: bytes) -> list[Response]:
    """Send ``data`` in one write and read until the proxy closes the connection."""
    client = await Client.connect(handle.port, handle.ca_file)
    try:
        await client.send_raw(data)
        return responses_in(await client.read_until_closed())
    finally:
        await client.close()


def targets_seen(handle: ProxyHandle) -> list[str]:
    return [r.target for r in handle.upstream.requests]


MALFORMED = {
    "garbage": b"\x00\x01 not http\r\n\r\n",
    "no-host": b"GET /c HTTP/1.1\r\n\r\n",
    "bad-chunk-size": b"POST /c HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "smuggling-connection-header": b"GET /c HTTP/1.1\r\nHost: proxy\r\nConnection: Content-Length\r\n\r\n",
}


@pytest.mark.parametrize("malformed", sorted(MALFORMED))
async def test_requests_before_a_malformed_one_are_answered_in_order_then_it_is_refused(
    proxy: ProxyHandle, malformed: str
) -> None:
    token = proxy.issuer.token()
    answers = await exchange(proxy, get("/a", token) + get("/b", token) + MALFORMED[malformed])
    assert [(r.status, r.json().get("path")) for r in answers[:2]] == [(200, "/a"), (200, "/b")]
    refusal = answers[2]
    assert (refusal.status, refusal.json()["kind"], refusal.header("connection")) == (400, "Status", "close")
    assert len(answers) == 3
    assert targets_seen(proxy) == ["/a", "/b"]
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(b"GET /b HTTP/1.1\r\nHost: proxy\r\n\r\n", id="a-request"),
        pytest.param(b"\x00garbage\r\n\r\n", id="garbage"),
        pytest.param(b"\r\n", id="a-blank-line"),
    ],
)
@pytest.mark.parametrize(
    "closing",
    [
        pytest.param(("Connection: close",), id="connection-close"),
        pytest.param((), id="http-1.0"),
        pytest.param(("Connection: keep-alive",), id="http-1.0-keep-alive"),  # the proxy closes these too
    ],
)
async def test_nothing_after_a_request_that_closes_the_connection_is_read(
    proxy: ProxyHandle, closing: tuple[str, ...], after: bytes
) -> None:
    token = proxy.issuer.token()
    version = "1.1" if closing == ("Connection: close",) else "1.0"
    if b"GET /b" in after:
        after = after.replace(b"Host: proxy\r\n", f"Host: proxy\r\n{BEARER.format(token=token)}".encode())
    answers = await exchange(proxy, get("/a", token, *closing, version=version) + after)
    assert [(r.status, r.json()["path"]) for r in answers] == [(200, "/a")]  # not a 400, not a second answer
    assert targets_seen(proxy) == ["/a"]


async def test_a_request_after_the_body_of_a_closing_one_is_not_read_and_does_not_cost_its_answer(
    proxy: ProxyHandle,
) -> None:
    token = proxy.issuer.token()
    head = get("/echo-body", token, "Connection: close", "Content-Length: 10").replace(b"GET", b"POST", 1)
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(head + b"01234")
        await client.send_raw(b"56789" + get("/b", token))  # the body's end, then what comes after it
        answers = responses_in(await client.read_until_closed())
    finally:
        await client.close()
    assert [(r.status, r.body) for r in answers] == [(200, b"0123456789")]  # it was refused with a 400 before
    assert targets_seen(proxy) == ["/echo-body"]


async def test_a_request_sent_while_a_closing_watch_streams_is_not_read(proxy: ProxyHandle) -> None:
    """``GET /watch`` with ``Connection: close`` streams until kube-apiserver ends it; a request sent meanwhile
    must neither cut that response short nor be forwarded."""
    token = proxy.issuer.token()
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(get("/watch", token, "Connection: close"))
        await until(lambda: proxy.upstream.open_watches == 1, "the watch to reach kube-apiserver")
        await client.send_raw(get("/b", token))
        proxy.upstream.emit({"type": "ADDED", "object": {"kind": "Pod"}})
        proxy.upstream.end_watches()
        answers = responses_in(await client.read_until_closed())
    finally:
        await client.close()
    assert [(r.status, r.body) for r in answers] == [(200, b'{"type": "ADDED", "object": {"kind": "Pod"}}\n')]
    assert targets_seen(proxy) == ["/watch"]


async def test_bytes_after_an_upgrade_request_belong_to_its_tunnel_not_to_a_request(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    exec_request = (
        "POST /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: proxy\r\n"
        f"{BEARER.format(token=token)}Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
    ).encode()
    smuggled = get("/api/v1/secrets", token)
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(exec_request + smuggled)
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ")
        # the recording upstream echoes its tunnel: the "request" came back as bytes, never parsed
        assert await asyncio.wait_for(client.reader.readexactly(len(smuggled)), 10) == smuggled
    finally:
        await client.close()
    assert targets_seen(proxy) == ["/api/v1/namespaces/default/pods/p/exec?command=sh"]


async def test_bytes_after_a_refused_upgrade_are_not_read_as_a_request(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    exec_request = (
        "POST /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: proxy\r\n"
        f"{BEARER.format(token=token)}Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Test-Refuse-Upgrade: 1\r\n\r\n"
    ).encode()
    answers = await exchange(proxy, exec_request + get("/api/v1/secrets", token))
    assert [(r.status, r.header("connection")) for r in answers] == [(403, "close")]
    assert targets_seen(proxy) == ["/api/v1/namespaces/default/pods/p/exec?command=sh"]
