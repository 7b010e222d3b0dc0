"""ResponseReader: kube-apiserver's bytes in, events out, and whether the connection can be reused."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.errors import UnaskedSwitch, UpstreamError
from kube_oidc_proxy.http1.events import (
    CHUNK_END,
    MESSAGE_END,
    Body,
    MessageEnd,
    ResponseEvent,
    ResponseHead,
    Upgraded,
)
from kube_oidc_proxy.http1.response import MAX_RESPONSE_HEAD_BYTES, ResponseReader
from tests.unit.http1.transcripts import bytewise, feed_response, merge_bodies, pieces_of, split_at_every_position


def reader_for(*, head_only: bool = False) -> ResponseReader:
    reader = ResponseReader()
    reader.expect(head_only=head_only)
    return reader


def types(events: list[ResponseEvent]) -> list[type]:
    return [type(e) for e in events]


JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Audit-Id: 5f0c\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Kubernetes-Pf-Flowschema-Uid: a\r\n"
    b"Content-Length: 15\r\n\r\n"
    b'{"kind":"List"}'
)
JSON_EVENTS: list[ResponseEvent] = [
    ResponseHead(
        status=200,
        reason=b"OK",
        http_version="1.1",
        headers=[
            (b"Audit-Id", b"5f0c"),
            (b"Content-Type", b"application/json"),
            (b"X-Kubernetes-Pf-Flowschema-Uid", b"a"),
            (b"Content-Length", b"15"),
        ],
        keep_alive=True,
        framing="length",
        content_length=15,
    ),
    Body(b'{"kind":"List"}'),
    MESSAGE_END,
]

WATCH_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;stream=watch\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    b"11\r\n"
    b'{"type":"ADDED"}\n\r\n'
    b"14;ext=1\r\n"
    b'{"type":"MODIFIED"}\n\r\n'
    b"0\r\n\r\n"
)
WATCH_EVENTS: list[ResponseEvent] = [
    ResponseHead(
        status=200,
        reason=b"OK",
        http_version="1.1",
        headers=[(b"Content-Type", b"application/json;stream=watch"), (b"Transfer-Encoding", b"chunked")],
        keep_alive=True,
        framing="chunked",
        content_length=None,
    ),
    Body(b'{"type":"ADDED"}\n'),
    CHUNK_END,
    Body(b'{"type":"MODIFIED"}\n'),
    CHUNK_END,
    MESSAGE_END,
]


def test_content_length_response_gives_head_body_and_end() -> None:
    reader = reader_for()
    assert reader.feed(JSON_RESPONSE) == JSON_EVENTS
    assert reader.ended
    assert not reader.must_close
    assert reader.framing == "length"


def test_chunked_response_gives_body_and_chunk_end_per_chunk_then_message_end() -> None:
    # RFC 9112 §7.1: chunked-body = *chunk last-chunk trailer-section CRLF. The last-chunk is not a data chunk; a
    # ChunkEnd there is a "boundary" right before MessageEnd on which a stopping watch would be cut instead of ended.
    reader = reader_for()
    assert reader.feed(WATCH_RESPONSE) == WATCH_EVENTS
    assert reader.ended
    assert not reader.must_close


def test_chunked_watch_body_is_decoded_chunk_by_chunk() -> None:
    reader = reader_for()
    events = reader.feed(WATCH_RESPONSE)
    assert events[0] == WATCH_EVENTS[0]
    assert [e for e in events if isinstance(e, Body)] == [Body(b'{"type":"ADDED"}\n'), Body(b'{"type":"MODIFIED"}\n')]
    assert events[1:3] == [Body(b'{"type":"ADDED"}\n'), CHUNK_END]
    assert events[-1] == MESSAGE_END
    assert reader.ended


@pytest.mark.parametrize("data", [JSON_RESPONSE, WATCH_RESPONSE], ids=["content-length", "chunked"])
def test_response_split_anywhere_gives_the_same_events(data: bytes) -> None:
    reference = merge_bodies(feed_response([data]))
    assert types(reference)[0] is ResponseHead
    assert reference[-1] == MESSAGE_END
    for pieces in [*split_at_every_position(data), bytewise(data)]:
        assert merge_bodies(feed_response(pieces)) == reference


def test_chunk_end_comes_only_after_a_whole_chunk() -> None:
    reader = reader_for()
    cut = WATCH_RESPONSE.index(b"ADDED")
    events = reader.feed(WATCH_RESPONSE[:cut])  # head and part of the first chunk
    assert types(events) == [ResponseHead, Body]
    assert CHUNK_END not in events
    rest = reader.feed(WATCH_RESPONSE[cut:])
    assert rest[0] == Body(b'ADDED"}\n')
    assert rest[1] == CHUNK_END


def test_watch_stream_body_is_delivered_as_it_arrives() -> None:
    reader = reader_for()
    reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert reader.feed(b"5\r\nhello\r\n") == [Body(b"hello"), CHUNK_END]
    assert not reader.ended
    assert reader.feed(b"3\r\nabc\r\n") == [Body(b"abc"), CHUNK_END]
    assert not reader.ended


def test_101_gives_response_head_then_upgraded_with_the_tail_and_no_message_end() -> None:
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Connection: Upgrade\r\n"
        b"Upgrade: SPDY/3.1\r\n"
        b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n"
    )
    tail = b"\x80\x03\x00\x02\x00\x00\x00\x0c"
    reader = reader_for()
    events = reader.feed(data + tail)
    assert types(events) == [ResponseHead, Upgraded]
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 101
    assert head.reason == b"Switching Protocols"
    assert head.framing == "none"
    assert (b"X-Stream-Protocol-Version", b"v4.channel.k8s.io") in head.headers
    assert events[1] == Upgraded(tail)
    assert MESSAGE_END not in events
    assert reader.upgraded
    assert not reader.ended


def test_101_split_inside_the_head_keeps_every_tunnel_byte() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    tail = b"\x81\x05hello"
    for cut in range(len(data)):
        events = feed_response([(data + tail)[:cut], (data + tail)[cut:]])
        assert types(events) == [ResponseHead, Upgraded], f"split at {cut}"
        assert events[-1] == Upgraded(tail)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    ],
    ids=["no-headers", "no-upgrade", "no-connection-upgrade"],
)
def test_a_101_that_names_no_protocol_is_an_unasked_switch(head: bytes) -> None:
    # llhttp stops after any 101; without both headers httptools reports that as a parse error
    with pytest.raises(UnaskedSwitch) as refused:
        reader_for().feed(head + b"tunnel bytes")
    assert "names no protocol" in refused.value.detail


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\n",
    ],
    ids=["100", "103", "100-then-103", "102"],
)
def test_interim_responses_are_skipped_and_the_final_response_is_delivered(interim: bytes) -> None:
    data = interim + JSON_RESPONSE
    assert feed_response([data]) == JSON_EVENTS
    assert merge_bodies(feed_response(bytewise(data))) == JSON_EVENTS


def test_interim_response_alone_gives_no_events_and_does_not_end_the_exchange() -> None:
    reader = reader_for()
    assert reader.feed(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n") == []
    assert not reader.ended
    assert reader.feed(JSON_RESPONSE) == JSON_EVENTS


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_204_and_304_have_no_body_even_with_a_content_length(status: bytes) -> None:
    reader = reader_for()
    events = reader.feed(b"HTTP/1.1 " + status + b"\r\nContent-Length: 10\r\n\r\n")
    assert types(events) == [ResponseHead, MessageEnd]
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.framing == "none"
    assert reader.ended
    assert not reader.must_close
    # The connection is still in sync: the next response parses from its first byte.
    reader.expect(head_only=False)
    assert reader.feed(JSON_RESPONSE) == JSON_EVENTS


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    ],
    ids=["content-length", "chunked", "no-framing"],
)
def test_head_response_ends_at_the_head_and_the_connection_is_not_reused(response: bytes) -> None:
    reader = reader_for(head_only=True)
    events = reader.feed(response)
    assert types(events) == [ResponseHead, MessageEnd]
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.framing == "none"
    assert reader.ended
    assert reader.must_close


def test_bytes_after_a_head_response_are_not_reported_as_body() -> None:
    reader = reader_for(head_only=True)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert types(events) == [ResponseHead, MessageEnd]
    assert reader.feed(b"hello") == []
    assert reader.feed(b"\x00garbage") == []


def test_response_without_framing_is_read_until_close_and_ends_on_eof() -> None:
    reader = reader_for()
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.framing == "close"
    assert not head.keep_alive
    assert reader.must_close
    assert events[1:] == [Body(b"first ")]
    assert reader.feed(b"second") == [Body(b"second")]
    assert not reader.ended
    assert reader.eof() == [MESSAGE_END]
    assert reader.ended
    assert reader.eof() == []  # ended once


@pytest.mark.parametrize(
    "before_eof",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        JSON_RESPONSE,
    ],
    ids=["nothing", "mid-head", "mid-length-body", "mid-chunk", "after-complete-response"],
)
def test_eof_anywhere_but_a_read_until_close_body_gives_no_events(before_eof: bytes) -> None:
    reader = reader_for()
    reader.feed(before_eof)
    assert reader.eof() == []


def test_eof_before_a_content_length_body_is_complete_leaves_the_exchange_unended() -> None:
    reader = reader_for()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    reader.eof()
    assert not reader.ended  # the caller reports a truncated response


@pytest.mark.parametrize(
    ("response", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    ],
    ids=["close", "close-capitalised", "http-1.0", "http-1.0-keep-alive", "http-1.1"],
)
def test_connection_close_sets_must_close(response: bytes, keep_alive: bool) -> None:
    reader = reader_for()
    events = reader.feed(response)
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.keep_alive is keep_alive
    assert reader.must_close is not keep_alive
    assert events[-1] == MESSAGE_END


@pytest.mark.parametrize(
    "response",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/9.9 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
    ],
    ids=[
        "not-http",
        "non-numeric-status",
        "two-digit-status",
        "bad-version",
        "bad-content-length",
        "duplicate-content-length",
        "content-length-and-chunked",
        "obs-fold",
        "nul-in-value",
        "space-in-name",
        "bad-chunk-size",
    ],
)
def test_malformed_response_raises_upstream_error(response: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        reader_for().feed(response)
    assert info.value.code == 502


def test_oversized_response_head_raises_upstream_error() -> None:
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * (MAX_RESPONSE_HEAD_BYTES + 1) + b"\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(UpstreamError):
        reader_for().feed(big)


def test_response_with_a_transfer_encoding_other_than_final_chunked_is_not_read_as_chunked() -> None:
    # RFC 9112 §6.3 (4): in a response, a Transfer-Encoding whose final coding is not chunked means the body runs
    # until the connection closes. Go's transport (what kube clients use) refuses codings other than chunked. Either
    # refusing (UpstreamError) or reading until close is correct; calling it "chunked" leaves eof() unable to end it.
    reader = reader_for()
    try:
        events = reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")
    except UpstreamError:
        return
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.framing == "close"
    assert reader.eof() == [MESSAGE_END]


def test_reason_phrase_is_kept() -> None:
    events = reader_for().feed(b"HTTP/1.1 422 Very Unprocessable Entity\r\nContent-Length: 0\r\n\r\n")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 422
    assert head.reason == b"Very Unprocessable Entity"


def test_empty_reason_phrase_is_accepted() -> None:
    events = reader_for().feed(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason) == (200, b"")


def test_reason_phrase_split_across_feeds_is_joined() -> None:
    data = b"HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n"
    events = feed_response(pieces_of(data, 3))
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.reason == b"Not Found Here"


def test_response_header_names_keep_their_case_order_and_repeats() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\n"
        b"Set-Cookie: a=1\r\n"
        b"X-Mixed-CASE: v\r\n"
        b"set-cookie: b=2\r\n"
        b"WWW-Authenticate: Bearer\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    head = feed_response([data])[0]
    assert isinstance(head, ResponseHead)
    assert head.headers == [
        (b"Set-Cookie", b"a=1"),
        (b"X-Mixed-CASE", b"v"),
        (b"set-cookie", b"b=2"),
        (b"WWW-Authenticate", b"Bearer"),
        (b"Content-Length", b"0"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\n\r\nok",
    ],
)
def test_content_length_is_recognised_in_any_case(data: bytes) -> None:
    events = feed_response([data])
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert (head.framing, head.content_length) == ("length", 2)
    assert events[1:] == [Body(b"ok"), MESSAGE_END]


def test_content_length_zero_response_has_no_body_and_keeps_the_connection() -> None:
    reader = reader_for()
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert types(events) == [ResponseHead, MessageEnd]
    assert reader.framing == "none"
    assert not reader.must_close


def test_reader_reads_consecutive_responses_on_a_kept_alive_connection() -> None:
    reader = reader_for()
    assert reader.feed(JSON_RESPONSE) == JSON_EVENTS
    reader.expect(head_only=False)
    assert not reader.ended
    assert reader.feed(WATCH_RESPONSE) == feed_response([WATCH_RESPONSE])
    assert reader.ended
    reader.expect(head_only=False)
    events = reader.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}")
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.status == 404
    assert events[1:] == [Body(b"{}"), MESSAGE_END]
    assert not reader.must_close
