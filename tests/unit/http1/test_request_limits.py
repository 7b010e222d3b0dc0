"""Size limits on request heads: llhttp has none, so RequestReader bounds what one client can make it hold."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.errors import ClientProtocolError, HeadersTooLarge
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestHead
from kube_oidc_proxy.http1.request import (
    DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_HEADERS,
    MAX_BODY_BYTES_WITHOUT_DATA,
    RequestReader,
)
from tests.unit.http1.transcripts import HOST, feed_request, merge_bodies, pieces_of

KIB = 1024
MIB = 1024 * KIB


def bytes_fed_until_refused(reader: RequestReader, data: bytes, piece: int) -> int:
    """Feed ``data`` in ``piece``-sized writes; return how many bytes had been fed when 431 was raised."""
    fed = 0
    with pytest.raises(HeadersTooLarge) as info:
        for part in pieces_of(data, piece):
            fed += len(part)
            reader.feed(part)
    assert info.value.code == 431
    return fed


def request_with_header_value(size: int) -> bytes:
    return b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * size + b"\r\n\r\n"


def test_default_limits_are_what_kube_clients_need() -> None:
    # 64 KiB id tokens (hundreds of groups) must fit; kube-apiserver's own limit is 1 MiB.
    assert 64 * KIB < DEFAULT_MAX_HEAD_BYTES <= MIB
    assert DEFAULT_MAX_HEADERS >= 100


@pytest.mark.parametrize("piece", [None, 1000, 64 * KIB], ids=["whole", "1000-byte-writes", "64KiB-writes"])
def test_64_kib_bearer_token_passes_with_the_default_limit(piece: int | None) -> None:
    token = b"eyJ" + b"a" * (64 * KIB)
    data = b"GET /api HTTP/1.1\r\n" + HOST + b"Authorization: Bearer " + token + b"\r\nAccept: */*\r\n\r\n"
    events = feed_request([data] if piece is None else pieces_of(data, piece))
    assert [type(e) for e in events] == [RequestHead, MessageEnd]
    request = events[0]
    assert isinstance(request, RequestHead)
    assert request.headers[1] == (b"authorization", b"Bearer " + token)


@pytest.mark.parametrize("piece", [None, 1, 100], ids=["whole", "bytewise", "100-byte-writes"])
def test_head_just_under_the_limit_passes(piece: int | None) -> None:
    limit = 4096
    data = request_with_header_value(limit - 200)
    assert len(data) < limit
    events = feed_request([data] if piece is None else pieces_of(data, piece), RequestReader(max_head_bytes=limit))
    assert [type(e) for e in events] == [RequestHead, MessageEnd]


@pytest.mark.parametrize("piece", [None, 1, 100], ids=["whole", "bytewise", "100-byte-writes"])
def test_head_just_over_the_limit_is_refused_with_431(piece: int | None) -> None:
    limit = 4096
    data = request_with_header_value(limit + 100)
    with pytest.raises(HeadersTooLarge) as info:
        feed_request([data] if piece is None else pieces_of(data, piece), RequestReader(max_head_bytes=limit))
    assert info.value.code == 431
    assert isinstance(info.value, ClientProtocolError)  # the connection is closed like any protocol error


def test_head_over_the_default_limit_in_one_feed_is_refused_with_431() -> None:
    data = request_with_header_value(DEFAULT_MAX_HEAD_BYTES + 1)
    with pytest.raises(HeadersTooLarge) as info:
        RequestReader().feed(data)
    assert info.value.code == 431


def test_many_headers_adding_up_over_the_limit_are_refused_with_431() -> None:
    lines = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    with pytest.raises(HeadersTooLarge):
        RequestReader(max_head_bytes=64 * KIB).feed(b"GET / HTTP/1.1\r\n" + HOST + lines + b"\r\n")


def test_long_target_counts_towards_the_limit() -> None:
    data = b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n"
    with pytest.raises(HeadersTooLarge):
        RequestReader(max_head_bytes=4096).feed(data)


# A head that never ends: llhttp buffers an unfinished header name or value without limit. The reader bounds
# the bytes it holds to twice the limit (request.py: head pieces counted plus bytes fed since the last piece).

TRICKLES = [
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * (4 * MIB) + b"\r\n\r\n",
        DEFAULT_MAX_HEAD_BYTES,
        64 * KIB,
        id="4MiB-value-in-64KiB-writes",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * (4 * MIB) + b"\r\n\r\n",
        DEFAULT_MAX_HEAD_BYTES,
        4 * KIB,
        id="4MiB-value-in-4KiB-writes",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"X-" + b"n" * (4 * MIB) + b": v\r\n\r\n",
        DEFAULT_MAX_HEAD_BYTES,
        64 * KIB,
        id="4MiB-name-in-64KiB-writes",
    ),
    pytest.param(
        b"GET /" + b"a" * (4 * MIB) + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        DEFAULT_MAX_HEAD_BYTES,
        64 * KIB,
        id="4MiB-target-in-64KiB-writes",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * (64 * KIB) + b"\r\n\r\n",
        4 * KIB,
        1,
        id="value-bytewise-small-limit",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(200)) + b"\r\n",
        DEFAULT_MAX_HEAD_BYTES,
        64 * KIB,
        id="many-4KB-headers-in-64KiB-writes",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(200)) + b"\r\n",
        4 * KIB,
        7,
        id="many-small-headers-in-7-byte-writes",
    ),
]


@pytest.mark.parametrize(("data", "limit", "piece"), TRICKLES)
def test_oversized_head_trickled_in_small_writes_is_refused_before_twice_the_limit_is_fed(
    data: bytes, limit: int, piece: int
) -> None:
    fed = bytes_fed_until_refused(RequestReader(max_head_bytes=limit), data, piece)
    # Slack: the write that crosses the bound, and the few request-line bytes the reader does not count.
    assert fed <= 2 * limit + piece + 64, f"fed {fed} bytes with a {limit}-byte limit before refusing"


def test_large_body_followed_by_the_start_of_the_next_request_in_one_feed_is_not_a_large_head() -> None:
    # The body of a complete request is not head bytes: a 600 KiB PUT body arriving in the same read as the first
    # bytes of the next (pipelined) request must not count against the next request's head limit.
    body = b"b" * (600 * KIB)
    first = b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(body) + body
    second = b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n"
    reader = RequestReader()
    events = reader.feed(first + second[:20])
    events += reader.feed(second[20:])
    assert [type(e) for e in merge_bodies(events)] == [RequestHead, Body, MessageEnd, RequestHead, MessageEnd]


def test_large_body_fed_whole_then_the_next_request_passes() -> None:
    body = b"b" * (600 * KIB)
    first = b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(body) + body
    second = b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n"
    events = feed_request([first, second[:20], second[20:]])
    assert [type(e) for e in merge_bodies(events)] == [RequestHead, Body, MessageEnd, RequestHead, MessageEnd]


def test_limit_applies_per_request_not_per_connection() -> None:
    limit = 4096
    one = request_with_header_value(limit - 300)
    reader = RequestReader(max_head_bytes=limit)
    for _ in range(5):
        assert [type(e) for e in reader.feed(one)] == [RequestHead, MessageEnd]


@pytest.mark.parametrize("piece", [None, 10], ids=["whole", "10-byte-writes"])
def test_exactly_max_headers_pass_and_one_more_is_refused_with_431(piece: int | None) -> None:
    def request(count: int) -> bytes:
        others = b"".join(b"X-%d: v\r\n" % i for i in range(count - 1))
        return b"GET / HTTP/1.1\r\n" + HOST + others + b"\r\n"

    def feed(data: bytes) -> list[object]:
        return list(feed_request([data] if piece is None else pieces_of(data, piece), RequestReader(max_headers=10)))

    events = feed(request(10))
    assert isinstance(events[0], RequestHead)
    assert len(events[0].headers) == 10
    with pytest.raises(HeadersTooLarge) as info:
        feed(request(11))
    assert info.value.code == 431


def test_too_many_headers_with_the_default_limit_is_refused_with_431() -> None:
    lines = b"".join(b"X-%d: v\r\n" % i for i in range(DEFAULT_MAX_HEADERS))
    with pytest.raises(HeadersTooLarge) as info:
        RequestReader().feed(b"GET / HTTP/1.1\r\n" + HOST + lines + b"\r\n")
    assert info.value.code == 431


def test_repeated_header_lines_each_count_towards_the_header_limit() -> None:
    lines = b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n" * 20
    with pytest.raises(HeadersTooLarge):
        RequestReader(max_headers=10).feed(b"GET / HTTP/1.1\r\n" + HOST + lines + b"\r\n")


CHUNKED_HEAD = b"POST /x HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("piece", [1024, 8 * KIB, 64 * KIB])
def test_an_endless_trailer_field_is_refused_before_it_grows_past_the_bound(piece: int) -> None:
    # llhttp buffers an unfinished trailer field without limit (and copies it on every feed)
    reader = RequestReader()
    reader.feed(CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX-T: ")
    fed = 0
    with pytest.raises(ClientProtocolError) as info:
        while fed < 4 * MIB:
            reader.feed(b"a" * piece)
            fed += piece
    assert info.value.code == 400
    assert fed <= MAX_BODY_BYTES_WITHOUT_DATA + piece


def test_endless_chunk_extensions_are_refused_too() -> None:
    reader = RequestReader()
    reader.feed(CHUNKED_HEAD + b"5;x=")
    with pytest.raises(ClientProtocolError):
        for _ in range(100):
            reader.feed(b"a" * 4096)


def test_a_large_body_of_tiny_chunks_passes() -> None:
    # legitimate framing between pieces of data never adds up: each piece of data resets the count
    body = b"1\r\nx\r\n" * 200_000  # 1.2 MB of framing for 200,000 bytes of data
    events = feed_request([CHUNKED_HEAD, *pieces_of(body + b"0\r\n\r\n", 8 * KIB)])
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"x" * 200_000
    assert isinstance(events[-1], MessageEnd)


def test_a_large_head_of_a_chunked_request_is_not_counted_as_body_framing() -> None:
    # a 200 KiB head (a big token) arriving in one read with the start of its chunked body
    head = b"POST /x HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * (200 * KIB) + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    reader = RequestReader()
    events = reader.feed(head + b"5\r\nhel")
    events += reader.feed(b"lo\r\n0\r\n\r\n")
    assert [type(e) for e in merge_bodies(events)] == [RequestHead, Body, MessageEnd]
