"""What RequestReader refuses: smuggling material, malformed syntax, forms a reverse proxy must not accept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kube_oidc_proxy.errors import ClientProtocolError, MethodNotAllowed
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.request import RequestReader
from tests.unit.http1.transcripts import HOST, bytewise, feed_request, whole

SPLITS: list[Callable[[bytes], list[bytes]]] = [whole, bytewise]
SPLIT_IDS = ["whole", "bytewise"]


def refusal(data: bytes, split: Callable[[bytes], list[bytes]]) -> ClientProtocolError:
    with pytest.raises(ClientProtocolError) as info:
        feed_request(split(data))
    return info.value


BAD_REQUESTS = [
    # Request smuggling material (RFC 9112 §6.1, §6.3).
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        id="content-length-with-transfer-encoding",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        id="transfer-encoding-with-content-length",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        id="duplicate-content-length-same-value",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        id="duplicate-content-length-different-values",
    ),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3, 3\r\n\r\nabc", id="content-length-list"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n", id="content-length-negative"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +3\r\n\r\nabc", id="content-length-plus"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 0x10\r\n\r\n", id="content-length-hex"),
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: \r\n\r\n", id="content-length-empty"),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 99999999999999999999999\r\n\r\n",
        id="content-length-overflow",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", id="te-chunked-then-gzip"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        id="te-duplicated-header",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        id="te-chunked-twice-in-one-value",
    ),
    # Header syntax (RFC 9112 §5, RFC 9110 §5.5).
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\r\n b\r\n\r\n", id="obs-fold-space"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\r\n\tb\r\n\r\n", id="obs-fold-tab"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", id="nul-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\rb\r\n\r\n", id="bare-cr-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\nb\r\n\r\n", id="bare-lf-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\x01b\r\n\r\n", id="control-char-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\x7fb\r\n\r\n", id="del-in-value"),
    pytest.param(b"GET / HTTP/1.1\nHost: example.test\n\n", id="lf-only-line-endings"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: example.test\n\r\n", id="lf-only-after-one-header"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A : b\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A\t: b\r\n\r\n", id="tab-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b": b\r\n\r\n", id="empty-header-name"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X(A): b\r\n\r\n", id="separator-in-header-name"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"no-colon\r\n\r\n", id="header-without-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n " + HOST + b"\r\n", id="whitespace-before-first-header"),
    # Request line (RFC 9112 §3).
    pytest.param(b"G@T / HTTP/1.1\r\n" + HOST + b"\r\n", id="invalid-method-char"),
    pytest.param(b"get / HTTP/1.1\r\n" + HOST + b"\r\n", id="lower-case-method"),
    pytest.param(b" / HTTP/1.1\r\n" + HOST + b"\r\n", id="empty-method"),
    pytest.param(b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n", id="space-after-version"),
    pytest.param(b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n", id="space-in-target"),
    pytest.param(b"GET /\xc3\xa9 HTTP/1.1\r\n" + HOST + b"\r\n", id="non-ascii-in-target"),
    pytest.param(b"GET / http/1.1\r\n" + HOST + b"\r\n", id="lower-case-protocol-name"),
    pytest.param(b"GET / HTTP/1.1\r" + HOST + b"\r\n", id="bare-cr-after-request-line"),
    pytest.param(b"GET http://x/y HTTP/1.1\r\n" + HOST + b"\r\n", id="absolute-form-target"),
    pytest.param(b"GET https://example.test/api HTTP/1.1\r\n" + HOST + b"\r\n", id="absolute-form-https-target"),
    pytest.param(b"GET example.test:443 HTTP/1.1\r\n" + HOST + b"\r\n", id="authority-form-target-on-get"),
    pytest.param(b"GET * HTTP/1.1\r\n" + HOST + b"\r\n", id="asterisk-target-on-get"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="http2-prior-knowledge-preface"),
    # A path Go's url.ParseRequestURI cannot %-decode: kube-apiserver answers 400 before any handler.
    pytest.param(b"GET /api/v1/namespaces/default/secrets%zz HTTP/1.1\r\n" + HOST + b"\r\n", id="bad-escape-in-path"),
    pytest.param(b"GET /api/v1/namespaces/default/secrets% HTTP/1.1\r\n" + HOST + b"\r\n", id="bare-percent-at-end"),
    pytest.param(b"GET /api/v1/pods%2?watch=1 HTTP/1.1\r\n" + HOST + b"\r\n", id="cut-escape-before-query"),
    pytest.param(b"DELETE /api/v1/%%2F HTTP/1.1\r\n" + HOST + b"\r\n", id="percent-percent"),
    # Host (RFC 9112 §3.2).
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http-1.1-without-host"),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: 1\r\n" + HOST + b"\r\n", id="two-host-headers"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", id="two-host-headers-different-case"),
    pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", id="two-host-headers-in-http-1.0"),
    # Chunked framing (RFC 9112 §7.1).
    pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", id="chunk-size-not-hex"),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
        id="chunk-size-overflow",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        id="chunk-size-line-with-bare-lf",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        id="chunk-data-longer-than-its-size",
    ),
    # Upgrades to anything kube-apiserver does not serve.
    *(
        pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\n" + upgrade + b"\r\n", id=name)
        for name, upgrade in [
            ("upgrade-h2c", b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"),
            ("upgrade-h2c-then-websocket", b"Upgrade: h2c, websocket\r\n"),
            ("upgrade-websocket-then-spdy", b"Upgrade: websocket, SPDY/3.1\r\n"),
            ("upgrade-two-lines", b"Upgrade: websocket\r\nUpgrade: websocket\r\n"),
            ("upgrade-tls", b"Upgrade: TLS/1.2\r\n"),
            ("upgrade-spdy-3", b"Upgrade: SPDY/3\r\n"),
            ("upgrade-empty", b"Upgrade: ,\r\n"),
        ]
    ),
]

# Headers the proxy owns, in the spellings a client could use to name them in Connection.
OWNED_NAMES = [
    b"Content-Length",
    b"content-length",
    b"Transfer-Encoding",
    b"Host",
    b"Authorization",
    b"Proxy-Authorization",
    b"Impersonate-User",
    b"impersonate-group",
    b"Impersonate-Extra-Scopes",
    b"Impersonate_User",
    b"X-Remote-User",
    b"x_remote_group",
    b"Audit-ID",
    b"Audit_Id",
    b"X-Forwarded-For",
    b"X-Real-IP",
    b"Sec-WebSocket-Protocol",
    b"content_length",
]


@pytest.mark.parametrize("split", SPLITS, ids=SPLIT_IDS)
@pytest.mark.parametrize("name", OWNED_NAMES, ids=lambda name: name.decode())
def test_a_connection_header_naming_a_header_the_proxy_owns_is_refused(
    name: bytes, split: Callable[[bytes], list[bytes]]
) -> None:
    # Removing a framing header as hop-by-hop while still sending the body is how a request is smuggled.
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Connection: keep-alive, " + name + b"\r\nContent-Length: 2\r\n\r\nab"
    error = refusal(data, split)
    assert error.code == 400
    assert "Connection" in error.message


@pytest.mark.parametrize(
    "upgrade", [b"websocket", b"WebSocket", b"SPDY/3.1", b"spdy/3.1"], ids=lambda upgrade: upgrade.decode()
)
def test_the_upgrades_kube_apiserver_serves_are_accepted_in_any_case(upgrade: bytes) -> None:
    events = feed_request(
        [b"GET /exec HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\nUpgrade: " + upgrade + b"\r\n\r\n"]
    )
    head = events[0]
    assert isinstance(head, RequestHead) and head.upgrade


def test_connection_may_still_name_ordinary_hop_by_hop_headers() -> None:
    events = feed_request([b"GET / HTTP/1.1\r\n" + HOST + b"Connection: keep-alive, X-Hop, TE\r\nX-Hop: 1\r\n\r\n"])
    assert isinstance(events[0], RequestHead)


@pytest.mark.parametrize("split", SPLITS, ids=SPLIT_IDS)
@pytest.mark.parametrize("data", BAD_REQUESTS)
def test_malformed_or_ambiguous_request_is_refused_with_400(data: bytes, split: Callable[[bytes], list[bytes]]) -> None:
    error = refusal(data, split)
    assert type(error) is ClientProtocolError
    assert error.code == 400
    assert error.message  # something to put in the Status body


@pytest.mark.parametrize("split", SPLITS, ids=SPLIT_IDS)
@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"gzip, chunked", b"identity, chunked", b"chunked;q=1", b"deflate,chunked"],
    ids=lambda c: c.decode(),
)
def test_a_transfer_coding_before_chunked_is_refused_with_501_as_go_does(
    coding: bytes, split: Callable[[bytes], list[bytes]]
) -> None:
    # forwarded as plain chunked, the body would lose its coding; kube-apiserver refuses it the same way
    error = refusal(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n", split)
    assert error.code == 501


@pytest.mark.parametrize("split", SPLITS, ids=SPLIT_IDS)
@pytest.mark.parametrize(
    "data",
    [
        b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\n" + HOST + b"\r\n",
    ],
    ids=["authority-form", "origin-form"],
)
def test_connect_is_refused_with_405(data: bytes, split: Callable[[bytes], list[bytes]]) -> None:
    error = refusal(data, split)
    assert type(error) is MethodNotAllowed
    assert error.code == 405


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET / HTTP/2.0",
        b"GET / HTTP/0.9",
        b"GET / HTTP/1.2",
        b"GET / HTTP/3.0",
        b"GET / HTTP/9.9",
        b"GET /",  # HTTP/0.9 simple request: no version at all
    ],
)
def test_request_line_with_a_version_other_than_http_1_0_or_1_1_is_refused(request_line: bytes) -> None:
    # kube-apiserver (Go net/http) answers 505 to a major version other than 1 and 400 to a request line without
    # one; RequestHead.http_version is documented as "1.0" or "1.1", and the Host rule keys on "1.1", so a head
    # claiming HTTP/2.0 must not get through without a Host header.
    with pytest.raises(ClientProtocolError):
        feed_request([request_line + b"\r\n\r\n"])


ACCEPTED = [
    pytest.param(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n", b"OPTIONS", b"*", id="options-asterisk"),
    pytest.param(b"GET / HTTP/1.0\r\n\r\n", b"GET", b"/", id="http-1.0-without-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b"GET", b"/", id="http-1.1-with-empty-host"),
    pytest.param(b"HEAD /healthz HTTP/1.1\r\n" + HOST + b"\r\n", b"HEAD", b"/healthz", id="head"),
    pytest.param(
        b"PATCH /x HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
        b"PATCH",
        b"/x",
        id="transfer-encoding-is-case-insensitive",
    ),
    pytest.param(
        b"GET /a%20b?x=%zz&y='q'(r)*+,;=:@!$~ HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET",
        b"/a%20b?x=%zz&y='q'(r)*+,;=:@!$~",
        id="target-with-sub-delims-and-percent",
    ),
    pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X-A: caf\xc3\xa9\r\n\r\n", b"GET", b"/", id="obs-text-in-value"),
]


@pytest.mark.parametrize("split", SPLITS, ids=SPLIT_IDS)
@pytest.mark.parametrize(("data", "method", "target"), ACCEPTED)
def test_valid_but_unusual_request_is_accepted(
    data: bytes, method: bytes, target: bytes, split: Callable[[bytes], list[bytes]]
) -> None:
    events = feed_request(split(data))
    request = events[0]
    assert isinstance(request, RequestHead)
    assert (request.method, request.target) == (method, target)


def test_reader_keeps_refusing_after_an_error() -> None:
    reader = RequestReader()
    with pytest.raises(ClientProtocolError):
        reader.feed(b"G@T / HTTP/1.1\r\n")
    with pytest.raises(ClientProtocolError):
        reader.feed(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")


def test_refusal_message_names_no_header_value() -> None:
    # The message goes to the client in a Status body: it must not echo what the client sent.
    secret = b"Bearer s3cr3t-t0k3n"
    data = b"GET / HTTP/1.1\r\n" + HOST + b"Authorization: " + secret + b"\r\nX-A: a\x00b\r\n\r\n"
    error = refusal(data, whole)
    assert "s3cr3t" not in error.message


def test_data_after_connection_close_is_refused() -> None:
    data = b"GET /a HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n"
    with pytest.raises(ClientProtocolError):
        RequestReader().feed(data)
