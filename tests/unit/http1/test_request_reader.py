"""RequestReader transcripts: the same bytes give the same events however the client's writes were cut."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import MESSAGE_END, Body, MessageEnd, RequestEvent, RequestHead, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from tests.unit.http1.transcripts import (
    HOST,
    bytewise,
    feed_request,
    head,
    merge_bodies,
    pieces_of,
    split_at_every_position,
    whole,
    without_head_size,
)

H = (b"host", b"example.test")

TRANSCRIPTS: list[tuple[str, bytes, list[RequestEvent]]] = [
    (
        "simple-get",
        b"GET /api/v1/namespaces HTTP/1.1\r\n" + HOST + b"\r\n",
        [head(target=b"/api/v1/namespaces"), MESSAGE_END],
    ),
    (
        "kubectl-exec-style-headers",
        b"GET /api/v1/pods?watch=1&labelSelector=app%3Dx HTTP/1.1\r\n"
        + HOST
        + b"User-Agent: kubectl/v1.31.0 (linux/amd64)\r\n"
        + b"Authorization: Bearer abc.def.ghi\r\n"
        + b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
        + b"X-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
        + b"Accept: application/json, */*\r\n\r\n",
        [
            head(
                target=b"/api/v1/pods?watch=1&labelSelector=app%3Dx",
                headers=[
                    H,
                    (b"user-agent", b"kubectl/v1.31.0 (linux/amd64)"),
                    (b"authorization", b"Bearer abc.def.ghi"),
                    (b"x-stream-protocol-version", b"v4.channel.k8s.io"),
                    (b"x-stream-protocol-version", b"v3.channel.k8s.io"),
                    (b"accept", b"application/json, */*"),
                ],
            ),
            MESSAGE_END,
        ],
    ),
    (
        "header-names-lower-cased-values-kept",
        b"GET / HTTP/1.1\r\nHOST: example.test\r\nX-Mixed-CASE: Value With Spaces\r\n\r\n",
        [head(headers=[H, (b"x-mixed-case", b"Value With Spaces")]), MESSAGE_END],
    ),
    (
        "leading-whitespace-before-values-removed",
        b"GET / HTTP/1.1\r\n" + HOST + b"X-A:   padded\r\nX-B:\tv\r\nX-C:v\r\nX-Empty:\r\n\r\n",
        [head(headers=[H, (b"x-a", b"padded"), (b"x-b", b"v"), (b"x-c", b"v"), (b"x-empty", b"")]), MESSAGE_END],
    ),
    (
        "content-length-body",
        b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\n"
        + HOST
        + b'Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{"kind":"P"}\n',
        [
            head(
                b"POST",
                b"/api/v1/namespaces/default/pods",
                [H, (b"content-type", b"application/json"), (b"content-length", b"13")],
                framing="length",
                content_length=13,
            ),
            Body(b'{"kind":"P"}\n'),
            MESSAGE_END,
        ],
    ),
    (
        "content-length-zero-has-no-body",
        b"POST /x HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n\r\n",
        [head(b"POST", b"/x", [H, (b"content-length", b"0")], content_length=0), MESSAGE_END],
    ),
    (
        "chunked-body-with-extensions-and-trailer",
        b"PUT /x HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"5;name=value\r\nhello\r\n"
        + b"1;flag\r\n \r\n"
        + b"A\r\n0123456789\r\n"
        + b"0\r\nX-Trailer: t\r\n\r\n",
        [
            # Trailer fields never join the head: a trailer must not smuggle in an Impersonate-User.
            head(b"PUT", b"/x", [H, (b"transfer-encoding", b"chunked")], framing="chunked"),
            Body(b"hello 0123456789"),
            MESSAGE_END,
        ],
    ),
    (
        "expect-100-continue-with-body",
        b"PUT /x HTTP/1.1\r\n" + HOST + b"Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nok",
        [
            head(
                b"PUT",
                b"/x",
                [H, (b"expect", b"100-Continue"), (b"content-length", b"2")],
                framing="length",
                content_length=2,
                expect_continue=True,
            ),
            Body(b"ok"),
            MESSAGE_END,
        ],
    ),
    (
        "expect-100-continue-without-body-is-ignored",
        b"GET /x HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\n\r\n",
        [head(target=b"/x", headers=[H, (b"expect", b"100-continue")]), MESSAGE_END],
    ),
    (
        "connection-close",
        b"DELETE /x HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
        [head(b"DELETE", b"/x", [H, (b"connection", b"close")], keep_alive=False), MESSAGE_END],
    ),
    (
        "http-1.0-without-host",
        b"GET /healthz HTTP/1.0\r\n\r\n",
        [head(target=b"/healthz", headers=[], http_version="1.0", keep_alive=False), MESSAGE_END],
    ),
    (
        "http-1.0-keep-alive",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        [head(headers=[(b"connection", b"keep-alive")], http_version="1.0"), MESSAGE_END],
    ),
    (
        "options-asterisk",
        b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n",
        [head(b"OPTIONS", b"*"), MESSAGE_END],
    ),
    (
        "empty-host-value",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        [head(headers=[(b"host", b"")]), MESSAGE_END],
    ),
    (
        "leading-empty-line-ignored",
        b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n",
        [head(), MESSAGE_END],
    ),
    (
        "upgrade-header-without-connection-upgrade-is-not-an-upgrade",
        b"GET /x HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\n\r\n",
        [head(target=b"/x", headers=[H, (b"upgrade", b"websocket")]), MESSAGE_END],
    ),
]
TRANSCRIPT_IDS = [t[0] for t in TRANSCRIPTS]


@pytest.mark.parametrize(("name", "data", "expected"), TRANSCRIPTS, ids=TRANSCRIPT_IDS)
def test_request_fed_whole_gives_the_expected_events(name: str, data: bytes, expected: list[RequestEvent]) -> None:
    assert without_head_size(feed_request(whole(data))) == expected


@pytest.mark.parametrize(("name", "data", "expected"), TRANSCRIPTS, ids=TRANSCRIPT_IDS)
def test_request_fed_one_byte_at_a_time_gives_the_same_events(
    name: str, data: bytes, expected: list[RequestEvent]
) -> None:
    reference = merge_bodies(feed_request(whole(data)))
    assert merge_bodies(feed_request(bytewise(data))) == reference
    assert without_head_size(reference) == expected


@pytest.mark.parametrize(("name", "data", "expected"), TRANSCRIPTS, ids=TRANSCRIPT_IDS)
def test_request_split_at_every_position_gives_the_same_events(
    name: str, data: bytes, expected: list[RequestEvent]
) -> None:
    reference = merge_bodies(feed_request(whole(data)))
    for pieces in split_at_every_position(data):
        assert merge_bodies(feed_request(pieces)) == reference, f"split at {len(pieces[0])}"


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"X-A: padded  ", b"padded"),
        (b"X-A:\tv\t", b"v"),
        (b"Authorization: Bearer abc.def.ghi ", b"Bearer abc.def.ghi"),
        (b"X-A: inner  space \t ", b"inner  space"),
    ],
    ids=["spaces", "tabs", "bearer-token", "inner-whitespace-kept"],
)
def test_trailing_whitespace_is_not_part_of_a_header_value(line: bytes, value: bytes) -> None:
    # RFC 9110 §5.5 / RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; the OWS is not part of the
    # value. Go's net/http (kube-apiserver) trims it, so a token with a trailing space must still be the token.
    [request, _] = RequestReader().feed(b"GET / HTTP/1.1\r\n" + HOST + line + b"\r\n\r\n")
    assert isinstance(request, RequestHead)
    assert request.headers[1][1] == value


def test_expect_100_continue_with_trailing_whitespace_is_still_recognised() -> None:
    data = b"PUT /x HTTP/1.1\r\n" + HOST + b"Expect: 100-continue \r\nContent-Length: 2\r\n\r\n"
    [request] = RequestReader().feed(data)
    assert isinstance(request, RequestHead)
    assert request.expect_continue


def test_each_feed_returns_only_the_events_its_bytes_completed() -> None:
    reader = RequestReader()
    assert reader.feed(b"POST /x HTTP/1.1\r\n" + HOST) == []
    assert reader.feed(b"Content-Length: 6\r\n") == []
    [request] = reader.feed(b"\r\n")
    assert isinstance(request, RequestHead)
    assert request.framing == "length"
    assert reader.feed(b"abc") == [Body(b"abc")]
    assert reader.feed(b"def") == [Body(b"def"), MESSAGE_END]


@pytest.mark.parametrize(
    "before",
    [
        b"",
        b"GET / HTTP/1.1\r\nHo",
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Long: abc",
        b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: 6\r\n\r\nabc",
        b"PUT /x HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n6\r\nabc",
    ],
    ids=["idle", "in-request-line", "in-header-value", "in-length-body", "in-chunk-data"],
)
def test_an_empty_feed_produces_no_events(before: bytes) -> None:
    # An empty Body would be written upstream as chunk(b"") == b"0\r\n\r\n": the last-chunk, ending the body early.
    reader = RequestReader()
    reader.feed(before)
    assert reader.feed(b"") == []


def test_in_head_is_true_only_while_a_head_is_incomplete() -> None:
    reader = RequestReader()
    assert not reader.in_head
    reader.feed(b"GET / HTTP/1.1\r\nHo")
    assert reader.in_head
    reader.feed(b"st: example.test\r\n\r\n")
    assert not reader.in_head


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
        b"GET /api/v1/namespaces/kube-system/pods?limit=500 HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln\r\n"
        + b"Accept: application/json\r\n\r\n",
        b"POST /x HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\n",
    ],
)
def test_head_size_is_roughly_the_size_of_the_request_line_and_headers(data: bytes) -> None:
    [request, *_] = feed_request([data])
    assert isinstance(request, RequestHead)
    assert abs(request.head_size - len(data)) <= 4


def test_head_size_grows_with_a_large_token() -> None:
    token = b"e" * (64 * 1024)
    data = b"GET / HTTP/1.1\r\n" + HOST + b"Authorization: Bearer " + token + b"\r\n\r\n"
    [request, *_] = feed_request(pieces_of(data, 1000))
    assert isinstance(request, RequestHead)
    assert abs(request.head_size - len(data)) <= 4


# Keep-alive and pipelining --------------------------------------------------------------------------

FIRST = b"POST /a HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
SECOND = b"GET /b HTTP/1.1\r\n" + HOST + b"X-N: 2\r\n\r\n"
FIRST_EVENTS: list[RequestEvent] = [
    head(b"POST", b"/a", [H, (b"content-length", b"5")], framing="length", content_length=5),
    Body(b"hello"),
    MESSAGE_END,
]
SECOND_EVENTS: list[RequestEvent] = [head(target=b"/b", headers=[H, (b"x-n", b"2")]), MESSAGE_END]


def test_pipelined_requests_in_one_feed_give_events_for_both_in_order() -> None:
    assert without_head_size(RequestReader().feed(FIRST + SECOND)) == FIRST_EVENTS + SECOND_EVENTS


def test_pipelined_requests_split_anywhere_give_the_same_events() -> None:
    data = FIRST + SECOND + FIRST
    expected = FIRST_EVENTS + SECOND_EVENTS + FIRST_EVENTS
    for pieces in split_at_every_position(data):
        assert without_head_size(feed_request(pieces)) == expected, f"split at {len(pieces[0])}"
    assert without_head_size(feed_request(bytewise(data))) == expected


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(b"\x00garbage\r\n\r\n", id="garbage"),
        pytest.param(b"GET /c HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET /c HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", id="bad-chunk"),
    ],
)
def test_the_requests_completed_before_a_refusal_are_kept_for_their_answers(error: bytes) -> None:
    reader = RequestReader()
    with pytest.raises(ClientProtocolError):
        reader.feed(FIRST + SECOND + error)
    # a request the error cut short (its head, no end) is not among them
    assert without_head_size(reader.completed_before_error) == FIRST_EVENTS + SECOND_EVENTS


def test_a_refusal_in_a_later_feed_keeps_only_that_feed_s_completed_requests() -> None:
    reader = RequestReader()
    reader.feed(FIRST + SECOND[:10])
    with pytest.raises(ClientProtocolError):
        reader.feed(SECOND[10:] + b"\x00")
    assert without_head_size(reader.completed_before_error) == SECOND_EVENTS


def test_data_after_a_request_that_closes_the_connection_is_refused_after_it() -> None:
    # llhttp: "Data after `Connection: close`"; the connection answers the request and ignores the rest
    closing = b"GET /a HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    reader = RequestReader()
    with pytest.raises(ClientProtocolError):
        reader.feed(closing + SECOND)
    assert [type(e) for e in reader.completed_before_error] == [RequestHead, MessageEnd]


def test_keep_alive_connection_reads_a_second_request_after_the_first_completes() -> None:
    reader = RequestReader()
    first = reader.feed(FIRST)
    assert without_head_size(first) == FIRST_EVENTS
    assert not reader.in_head
    second = reader.feed(SECOND)
    assert without_head_size(second) == SECOND_EVENTS
    # Nothing from the first message leaks into the second.
    assert isinstance(second[0], RequestHead)
    assert second[0].content_length is None
    assert second[0].framing == "none"


def test_body_of_a_pipelined_request_is_not_mistaken_for_the_next_request() -> None:
    # A body that looks like a request line is still body: Content-Length says so.
    smuggled = b"GET /admin HTTP/1.1\r\n" + HOST + b"\r\n"
    data = b"POST /a HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(smuggled) + smuggled
    events = merge_bodies(RequestReader().feed(data))
    assert [type(e) for e in events] == [RequestHead, Body, MessageEnd]
    assert events[1] == Body(smuggled)


# Bodies ---------------------------------------------------------------------------------------------


def test_content_length_body_arrives_as_body_events_then_message_end() -> None:
    reader = RequestReader()
    events = reader.feed(b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\n0123")
    assert [type(e) for e in events] == [RequestHead, Body]
    assert events[1] == Body(b"0123")
    assert reader.feed(b"45") == [Body(b"45")]
    assert reader.feed(b"6789") == [Body(b"6789"), MESSAGE_END]


def test_content_length_body_stops_exactly_at_the_declared_length() -> None:
    reader = RequestReader()
    events = reader.feed(b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\n")
    assert merge_bodies(events)[1:] == [Body(b"abc"), MESSAGE_END]
    assert reader.in_head  # the bytes after the body started the next request


def test_chunked_body_is_decoded_across_feeds() -> None:
    reader = RequestReader()
    events = reader.feed(b"POST /x HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nab")
    assert isinstance(events[0], RequestHead)
    assert events[0].framing == "chunked"
    assert events[0].content_length is None
    rest = reader.feed(b"cd\r\n")
    rest += reader.feed(b"3\r\nefg\r\n0\r\n")
    assert MESSAGE_END not in rest
    rest += reader.feed(b"\r\n")
    assert merge_bodies(events[1:] + rest) == [Body(b"abcdefg"), MESSAGE_END]


def test_large_chunked_body_fed_in_small_pieces_is_reassembled_exactly() -> None:
    payload = bytes(range(256)) * 64
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in pieces_of(payload, 1000)) + b"0\r\n\r\n"
    data = b"POST /x HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + body
    events = merge_bodies(feed_request(pieces_of(data, 7)))
    assert [type(e) for e in events] == [RequestHead, Body, MessageEnd]
    assert events[1] == Body(payload)


# Upgrades -------------------------------------------------------------------------------------------

SPDY_HEAD = (
    b"POST /api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&tty=true HTTP/1.1\r\n"
    + HOST
    + b"Connection: Upgrade\r\n"
    + b"Upgrade: SPDY/3.1\r\n"
    + b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
    + b"X-Stream-Protocol-Version: channel.k8s.io\r\n\r\n"
)
SPDY_BYTES = b"\x80\x03\x00\x01\x00\x00\x00\x1a\x00\x00\x00\x01\x00\x00\x00\x00"
SPDY_EXPECTED_HEAD = head(
    b"POST",
    b"/api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true&tty=true",
    [
        H,
        (b"connection", b"Upgrade"),
        (b"upgrade", b"SPDY/3.1"),
        (b"x-stream-protocol-version", b"v4.channel.k8s.io"),
        (b"x-stream-protocol-version", b"channel.k8s.io"),
    ],
    upgrade=True,
)

WS_HEAD = (
    b"GET /api/v1/namespaces/default/pods/web/exec?command=sh HTTP/1.1\r\n"
    + HOST
    + b"Connection: keep-alive, Upgrade\r\n"
    + b"Upgrade: websocket\r\n"
    + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    + b"Sec-WebSocket-Version: 13\r\n"
    + b"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
)
WS_BYTES = b"\x82\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
WS_EXPECTED_HEAD = head(
    b"GET",
    b"/api/v1/namespaces/default/pods/web/exec?command=sh",
    [
        H,
        (b"connection", b"keep-alive, Upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"v5.channel.k8s.io"),
    ],
    upgrade=True,
)
UPGRADES = [
    pytest.param(SPDY_HEAD, SPDY_BYTES, SPDY_EXPECTED_HEAD, id="spdy-post"),
    pytest.param(WS_HEAD, WS_BYTES, WS_EXPECTED_HEAD, id="websocket-get"),
]


@pytest.mark.parametrize(("head_bytes", "tunnel_bytes", "expected_head"), UPGRADES)
def test_upgrade_gives_head_message_end_and_the_trailing_bytes_untouched(
    head_bytes: bytes, tunnel_bytes: bytes, expected_head: RequestHead
) -> None:
    events = RequestReader().feed(head_bytes + tunnel_bytes)
    assert without_head_size(events) == [expected_head, MESSAGE_END, Upgraded(tunnel_bytes)]


@pytest.mark.parametrize(("head_bytes", "tunnel_bytes", "expected_head"), UPGRADES)
def test_upgrade_split_inside_the_head_carries_all_trailing_bytes_in_the_tail(
    head_bytes: bytes, tunnel_bytes: bytes, expected_head: RequestHead
) -> None:
    data = head_bytes + tunnel_bytes
    for cut in range(len(head_bytes)):
        events = feed_request([data[:cut], data[cut:]])
        assert without_head_size(events) == [expected_head, MESSAGE_END, Upgraded(tunnel_bytes)], f"split at {cut}"


@pytest.mark.parametrize(("head_bytes", "tunnel_bytes", "expected_head"), UPGRADES)
def test_upgrade_split_inside_the_tunnel_bytes_carries_only_what_was_fed(
    head_bytes: bytes, tunnel_bytes: bytes, expected_head: RequestHead
) -> None:
    data = head_bytes + tunnel_bytes
    for cut in range(len(head_bytes), len(data) + 1):
        reader = RequestReader()
        events = reader.feed(data[:cut])
        assert without_head_size(events) == [expected_head, MESSAGE_END, Upgraded(data[len(head_bytes) : cut])]
        with pytest.raises(RuntimeError):
            reader.feed(data[cut:])


def test_upgrade_fed_one_byte_at_a_time_ends_with_an_empty_tail() -> None:
    events = feed_request(bytewise(SPDY_HEAD))
    assert without_head_size(events) == [SPDY_EXPECTED_HEAD, MESSAGE_END, Upgraded(b"")]


def test_feeding_after_an_upgrade_raises_runtime_error() -> None:
    reader = RequestReader()
    reader.feed(SPDY_HEAD + SPDY_BYTES)
    with pytest.raises(RuntimeError):
        reader.feed(SPDY_BYTES)
    with pytest.raises(RuntimeError):
        reader.feed(b"")


def test_upgrade_with_content_length_zero_is_accepted() -> None:
    data = SPDY_HEAD[:-2] + b"Content-Length: 0\r\n\r\n"
    events = RequestReader().feed(data + SPDY_BYTES)
    assert [type(e) for e in events] == [RequestHead, MessageEnd, Upgraded]
    assert isinstance(events[0], RequestHead)
    assert events[0].upgrade
    assert events[0].framing == "none"
    assert events[2] == Upgraded(SPDY_BYTES)


@pytest.mark.parametrize(
    "framing_header",
    [b"Content-Length: 4\r\n", b"Content-Length: 1\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["content-length-4", "content-length-1", "chunked"],
)
@pytest.mark.parametrize("upgrade_head", [SPDY_HEAD, WS_HEAD], ids=["spdy", "websocket"])
def test_upgrade_request_with_a_body_is_refused(upgrade_head: bytes, framing_header: bytes) -> None:
    data = upgrade_head[:-2] + framing_header + b"\r\n" + b"abcd"
    with pytest.raises(ClientProtocolError) as info:
        RequestReader().feed(data)
    assert type(info.value) is ClientProtocolError
    assert info.value.code == 400


def test_upgrade_after_a_keep_alive_request_on_the_same_connection() -> None:
    reader = RequestReader()
    first = reader.feed(b"GET /version HTTP/1.1\r\n" + HOST + b"\r\n")
    assert without_head_size(first) == [head(target=b"/version"), MESSAGE_END]
    events = reader.feed(WS_HEAD + WS_BYTES)
    assert without_head_size(events) == [WS_EXPECTED_HEAD, MESSAGE_END, Upgraded(WS_BYTES)]


def test_pipelined_request_after_an_upgrade_is_tunnel_bytes_not_a_request() -> None:
    events = RequestReader().feed(SPDY_HEAD + SECOND)
    assert [type(e) for e in events] == [RequestHead, MessageEnd, Upgraded]
    assert events[-1] == Upgraded(SECOND)
