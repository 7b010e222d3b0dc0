"""Bytes we write, checked byte-for-byte and by h11 as an independent parser."""

from __future__ import annotations

import json
from typing import Any

import h11
import pytest

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.serialize import (
    CONTINUE_100,
    LAST_CHUNK,
    STATUS_LINES,
    chunk,
    request_head,
    response_head,
    status_response,
)
from kube_oidc_proxy.status import MAX_MESSAGE_CHARS, status_body


def parse_request(data: bytes) -> tuple[h11.Request, list[h11.Event]]:
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    rest: list[h11.Event] = []
    while True:
        event = server.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        assert isinstance(event, h11.Event)
        rest.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    return request, rest


def parse_response(data: bytes, *, method: bytes = b"GET", eof: bool = False) -> tuple[h11.Response, bytes, bool]:
    """Parse ``data`` as the answer to a ``method`` request: the head, the body, and whether it ended cleanly."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "example.test")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    if eof:
        client.receive_data(b"")
    response: h11.Response | None = None
    body = b""
    ended = False
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            break
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            ended = True
            break
    assert response is not None
    return response, body, ended


def header(response: h11.Response, name: bytes) -> list[bytes]:
    return [bytes(v) for n, v in response.headers if n == name]


# request_head -------------------------------------------------------------------------------------------


def test_request_head_bytes_are_exact() -> None:
    headers: Headers = [
        (b"Host", b"kube-apiserver:6443"),
        (b"Impersonate-User", b"alice@example.com"),
        (b"Impersonate-Group", b"dev"),
        (b"Impersonate-Group", b"ops"),
        (b"X-Stream-Protocol-Version", b"v4.channel.k8s.io"),
        (b"X-Stream-Protocol-Version", b"v3.channel.k8s.io"),
    ]
    assert request_head(b"GET", b"/api/v1/pods?watch=1", headers) == (
        b"GET /api/v1/pods?watch=1 HTTP/1.1\r\n"
        b"Host: kube-apiserver:6443\r\n"
        b"Impersonate-User: alice@example.com\r\n"
        b"Impersonate-Group: dev\r\n"
        b"Impersonate-Group: ops\r\n"
        b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
        b"X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"])
def test_request_head_parses_back_with_h11(method: bytes) -> None:
    headers: Headers = [
        (b"host", b"kube-apiserver:6443"),
        (b"authorization", b"Bearer sa-token"),
        (b"impersonate-group", b"a"),
        (b"impersonate-group", b"b"),
        (b"content-length", b"0"),
    ]
    request, rest = parse_request(request_head(method, b"/apis/apps/v1/deployments", headers))
    assert request.method == method
    assert request.target == b"/apis/apps/v1/deployments"
    assert request.http_version == b"1.1"
    assert list(request.headers) == headers
    assert isinstance(rest[-1], h11.EndOfMessage)


def test_request_head_with_no_headers_is_a_complete_head() -> None:
    assert request_head(b"GET", b"/", []) == b"GET / HTTP/1.1\r\n\r\n"


def test_request_head_followed_by_chunks_is_a_valid_chunked_request() -> None:
    data = request_head(b"POST", b"/x", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
    data += b"".join(chunk(b"hello ")) + b"".join(chunk(b"world")) + LAST_CHUNK
    _, rest = parse_request(data)
    assert b"".join(bytes(e.data) for e in rest if isinstance(e, h11.Data)) == b"hello world"
    assert isinstance(rest[-1], h11.EndOfMessage)


# response_head ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (200, b"", b"HTTP/1.1 200 OK\r\n"),
        (404, b"", b"HTTP/1.1 404 Not Found\r\n"),
        (101, b"", b"HTTP/1.1 101 Switching Protocols\r\n"),
        (431, b"", b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (200, b"Fine", b"HTTP/1.1 200 Fine\r\n"),
        (422, b"Unprocessable Entity", b"HTTP/1.1 422 Unprocessable Entity\r\n"),
        (599, b"", b"HTTP/1.1 599 Unknown\r\n"),
        (599, b"Custom", b"HTTP/1.1 599 Custom\r\n"),
    ],
)
def test_response_head_status_line_is_exact(status: int, reason: bytes, line: bytes) -> None:
    headers: Headers = [(b"Content-Length", b"0")]
    assert response_head(status, reason, headers) == line + b"Content-Length: 0\r\n\r\n"


def test_response_head_keeps_header_case_order_and_repeats() -> None:
    headers: Headers = [
        (b"Audit-Id", b"1"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"Content-Length", b"2"),
    ]
    data = response_head(200, b"OK", headers)
    assert data == b"HTTP/1.1 200 OK\r\nAudit-Id: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n"
    response, body, ended = parse_response(data + b"ok")
    assert response.status_code == 200
    assert response.reason == b"OK"
    assert response.headers.raw_items() == headers
    assert (body, ended) == (b"ok", True)


def test_every_precomputed_status_line_parses_with_h11() -> None:
    for status, line in STATUS_LINES.items():
        if status < 200:
            continue  # h11 reads 1xx as informational; covered separately
        response, _, _ = parse_response(line + b"Content-Length: 0\r\n\r\n")
        assert response.status_code == status


def test_101_response_head_switches_protocols_for_h11() -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(
        h11.Request(
            method="GET",
            target="/exec",
            headers=[("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket")],
        )
    )
    client.send(h11.EndOfMessage())
    head = response_head(101, b"", [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")])
    client.receive_data(head + b"tunnel")
    event = client.next_event()
    assert isinstance(event, h11.InformationalResponse)
    assert event.status_code == 101
    assert client.states[h11.SERVER] is h11.SWITCHED_PROTOCOL
    assert client.trailing_data == (b"tunnel", False)


def test_continue_100_is_an_interim_response() -> None:
    assert CONTINUE_100 == b"HTTP/1.1 100 Continue\r\n\r\n"
    client = h11.Connection(h11.CLIENT)
    client.send(
        h11.Request(
            method="PUT", target="/", headers=[("Host", "h"), ("Expect", "100-continue"), ("Content-Length", "1")]
        )
    )
    client.receive_data(CONTINUE_100)
    event = client.next_event()
    assert isinstance(event, h11.InformationalResponse)
    assert event.status_code == 100


# chunk ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "pieces"),
    [
        (b"a", [b"1\r\n", b"a", b"\r\n"]),
        (b"hello", [b"5\r\n", b"hello", b"\r\n"]),
        (b"x" * 255, [b"ff\r\n", b"x" * 255, b"\r\n"]),
        (b"x" * 4096, [b"1000\r\n", b"x" * 4096, b"\r\n"]),
        (b"\r\n0\r\n\r\n", [b"7\r\n", b"\r\n0\r\n\r\n", b"\r\n"]),
    ],
    ids=["1-byte", "5-bytes", "255-bytes", "4096-bytes", "looks-like-last-chunk"],
)
def test_chunk_frames_data_with_its_hex_size(data: bytes, pieces: list[bytes]) -> None:
    assert chunk(data) == pieces


def test_chunked_response_we_write_parses_back_with_h11() -> None:
    parts = [b'{"type":"ADDED"}\n', b"\r\n0\r\n\r\n", bytes(range(256)) * 40]
    data = response_head(200, b"", [(b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked")])
    data += b"".join(b"".join(chunk(p)) for p in parts) + LAST_CHUNK
    response, body, ended = parse_response(data)
    assert response.status_code == 200
    assert body == b"".join(parts)
    assert ended


# status_response ---------------------------------------------------------------------------------------------


def status_of(data: bytes) -> tuple[h11.Response, dict[str, Any]]:
    response, body, ended = parse_response(data)
    assert ended, "the Status body must be exactly as long as Content-Length says"
    assert header(response, b"content-length") == [str(len(body)).encode()]
    document = json.loads(body)
    assert isinstance(document, dict)
    return response, document


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (400, "BadRequest"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "NotFound"),
        (405, "MethodNotAllowed"),
        (413, "RequestEntityTooLarge"),
        (431, "RequestHeaderFieldsTooLarge"),
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ],
)
def test_status_response_carries_a_kubernetes_status_body(code: int, reason: str) -> None:
    response, status = status_of(status_response(code, "something went wrong", close=False))
    assert response.status_code == code
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "something went wrong",
        "reason": reason,
        "code": code,
    }
    assert header(response, b"content-type") == [b"application/json"]
    assert header(response, b"x-content-type-options") == [b"nosniff"]
    assert header(response, b"cache-control") == [b"no-cache, private"]


def test_status_response_reason_for_an_unlisted_code_is_internal_error() -> None:
    _, status = status_of(status_response(418, "teapot", close=False))
    assert status["code"] == 418
    assert status["reason"] == "InternalError"


def test_status_response_says_connection_close_when_asked() -> None:
    response, _ = status_of(status_response(400, "bad request", close=True))
    assert header(response, b"connection") == [b"close"]


def test_status_response_keeps_the_connection_when_not_asked_to_close() -> None:
    response, _ = status_of(status_response(401, "Unauthorized", close=False))
    assert header(response, b"connection") == []


def test_status_response_adds_extra_headers() -> None:
    extra: Headers = [(b"WWW-Authenticate", b'Bearer realm="kubernetes"'), (b"Retry-After", b"1")]
    response, status = status_of(status_response(401, "Unauthorized", close=True, extra=extra))
    assert header(response, b"www-authenticate") == [b'Bearer realm="kubernetes"']
    assert header(response, b"retry-after") == [b"1"]
    assert header(response, b"connection") == [b"close"]
    assert status["code"] == 401


def test_status_response_body_follows_the_head_exactly() -> None:
    data = status_response(403, "forbidden", close=False)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert body == status_body(403, "forbidden")
    assert b"\r\nContent-Length: %d" % len(body) in head


def test_long_message_is_truncated() -> None:
    message = "user " + "x" * 10_000
    _, status = status_of(status_response(403, message, close=False))
    assert len(status["message"]) <= MAX_MESSAGE_CHARS
    assert status["message"].startswith("user xxx")
    assert status["message"].endswith("...")
    assert len(status_body(403, message)) < 1024


def test_message_at_the_limit_is_not_truncated() -> None:
    message = "m" * MAX_MESSAGE_CHARS
    _, status = status_of(status_response(403, message, close=False))
    assert status["message"] == message


@pytest.mark.parametrize(
    "message",
    [
        'user "alice" cannot list pods',
        "line one\nline two\r\nHTTP/1.1 200 OK",
        "tab\tbackslash\\ nul\x00 bell\x07",
        'closing brace }" , "code": 200',
        "non-ascii: café ✓",
    ],
    ids=["quotes", "newlines", "control-chars", "json-injection", "non-ascii"],
)
def test_message_is_json_escaped(message: str) -> None:
    data = status_response(403, message, close=True)
    response, status = status_of(data)
    assert status["message"] == message
    assert status["code"] == 403
    body = data.partition(b"\r\n\r\n")[2]
    assert b"\n" not in body
    assert b"\r" not in body
    assert b"\x00" not in body
    assert response.status_code == 403
