"""Properties over generated input: the reader never dies on a request, and splitting never changes meaning."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kube_oidc_proxy.errors import ClientProtocolError, UpstreamError
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestEvent, RequestHead, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.response import ResponseReader

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%"
# Names whose values change framing, routing or connection handling: chosen explicitly, never at random.
SPECIAL = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "proxy-connection", "upgrade", "expect"}
)

# Pieces of real requests, so random input reaches states deep inside the parser, not just the method.
METHODS = [b"GET ", b"POST ", b"PUT ", b"CONNECT ", b"OPTIONS ", b"HEAD ", b"get ", b"G\x00T "]
TARGETS = [b"/", b"/api/v1/pods?watch=1", b"*", b"http://x/y", b"x:443", b"/a b", b""]
VERSIONS = [b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b" HTTP/2.0\r\n", b" HTTP/1.1\n", b"\r\n"]
HEADER_LINES = [
    b"Host: x\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: Upgrade\r\n",
    b"Connection: close\r\n",
    b"Upgrade: SPDY/3.1\r\n",
    b"Expect: 100-continue\r\n",
    b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
]
NOISE = [b" folded\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"X-A: \x7f\r\n", b"X-A : v\r\n"]
BODY_PIECES = [b"hello", b"5\r\nhello\r\n", b"5;ext=1\r\nhello\r\n", b"0\r\n\r\n", b"ff" * 10 + b"\r\n", b"\r\n"]

request_lines = st.tuples(st.sampled_from(METHODS), st.sampled_from(TARGETS), st.sampled_from(VERSIONS)).map(b"".join)
header_lines = st.lists(
    st.one_of(st.sampled_from(HEADER_LINES), st.sampled_from(HEADER_LINES), st.sampled_from(NOISE)), max_size=8
).map(b"".join)
end_of_head = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b""])
body_soup = st.lists(st.one_of(st.sampled_from(BODY_PIECES), st.binary(max_size=8)), max_size=6).map(b"".join)
messages = st.tuples(request_lines, header_lines, end_of_head, body_soup).map(b"".join)
raw_requests = st.one_of(
    st.binary(max_size=300),
    messages,
    st.lists(messages, min_size=2, max_size=4).map(b"".join),
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@SETTINGS
@given(
    data=raw_requests,
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
    max_head_bytes=st.sampled_from([64, 1024, 256 * 1024]),
    max_headers=st.sampled_from([2, 256]),
)
def test_arbitrary_bytes_produce_events_or_a_client_protocol_error_never_anything_else(
    data: bytes, points: list[int], max_head_bytes: int, max_headers: int
) -> None:
    reader = RequestReader(max_head_bytes=max_head_bytes, max_headers=max_headers)
    try:
        for piece in cut(data, points):
            events = reader.feed(piece)
            if events and isinstance(events[-1], Upgraded):
                break
    except ClientProtocolError as exc:  # includes HeadersTooLarge, MethodNotAllowed and NotImplementedCoding
        assert exc.code in (400, 405, 431, 501, 505)
        assert exc.message


@SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        b"HTTP/1.1 ",
                        b"200 OK\r\n",
                        b"101 Switching Protocols\r\n",
                        b"103 Early Hints\r\n",
                        b"204 No Content\r\n",
                        b"Content-Length: 3\r\n",
                        b"Transfer-Encoding: chunked\r\n",
                        b"Connection: close\r\n",
                        b"\r\n",
                        b"3\r\nabc\r\n",
                        b"0\r\n\r\n",
                    ]
                ),
                st.binary(max_size=6),
            ),
            max_size=30,
        ).map(b"".join),
    ),
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
    head_only=st.booleans(),
)
def test_arbitrary_upstream_bytes_produce_events_or_an_upstream_error_never_anything_else(
    data: bytes, points: list[int], head_only: bool
) -> None:
    reader = ResponseReader()
    reader.expect(head_only=head_only)
    try:
        for piece in cut(data, points):
            events = reader.feed(piece)
            if events and isinstance(events[-1], Upgraded):
                return
        reader.eof()
    except UpstreamError as exc:
        assert exc.code == 502


# Valid requests round-trip ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # as sent (names in their original case)
    body: bytes | None
    chunked: bool

    def encode(self) -> bytes:
        lines = [self.method + b" " + self.target + b" HTTP/1.1\r\n"]
        lines += [name + b": " + value + b"\r\n" for name, value in self.headers]
        if self.body is not None and self.chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n\r\n")
            if self.body:
                lines.append(b"%x\r\n%s\r\n" % (len(self.body), self.body))
            lines.append(b"0\r\n\r\n")
        elif self.body is not None:
            lines.append(b"Content-Length: %d\r\n\r\n" % len(self.body))
            lines.append(self.body)
        else:
            lines.append(b"\r\n")
        return b"".join(lines)

    def expected_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(name.lower(), value) for name, value in self.headers]
        if self.body is not None and self.chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        elif self.body is not None:
            headers.append((b"content-length", str(len(self.body)).encode()))
        return headers


header_names = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20).filter(lambda n: n.lower() not in SPECIAL)
# Visible ASCII, with single inner spaces: leading and trailing whitespace is not part of a value (RFC 9110 §5.5).
header_values = st.lists(st.text(alphabet=VISIBLE, min_size=1, max_size=15), max_size=4).map(" ".join)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE"]))
    # a path Go can %-decode (else it is refused: test_request_refusals.py); the query is not decoded
    pieces = st.one_of(
        st.text(alphabet=PATH_CHARS.replace("%", ""), max_size=8), st.from_regex(r"%[0-9A-Fa-f]{2}", fullmatch=True)
    )
    path = "/" + "".join(draw(st.lists(pieces, max_size=8)))
    query = draw(st.one_of(st.just(""), st.text(alphabet=PATH_CHARS + "?", max_size=30).map(lambda q: "?" + q)))
    others = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    headers = [(n.encode(), v.encode()) for n, v in others]
    # Host somewhere in the list, as clients do not all put it first.
    at = draw(st.integers(min_value=0, max_value=len(headers)))
    headers.insert(at, (draw(st.sampled_from([b"Host", b"host", b"HOST"])), b"kube.example.test:443"))
    body = draw(st.one_of(st.none(), st.binary(max_size=200)))
    return Request(method, (path + query).encode(), headers, body, draw(st.booleans()))


@dataclass
class Seen:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    ended: bool


def read_all(pieces: list[bytes]) -> list[Seen]:
    reader = RequestReader()
    seen: list[Seen] = []
    for piece in pieces:
        events: list[RequestEvent] = reader.feed(piece)
        for event in events:
            if isinstance(event, RequestHead):
                seen.append(Seen(event.method, event.target, event.headers, b"", False))
            elif isinstance(event, Body):
                seen[-1].body += event.data
            elif isinstance(event, MessageEnd):
                seen[-1].ended = True
            else:
                raise AssertionError(f"unexpected {event!r}")
    return seen


@SETTINGS
@given(
    batch=st.lists(requests(), min_size=1, max_size=3),
    points=st.lists(st.integers(min_value=0, max_value=100_000), max_size=10),
)
def test_valid_requests_are_reconstructed_exactly_however_the_bytes_are_split(
    batch: list[Request], points: list[int]
) -> None:
    data = b"".join(r.encode() for r in batch)
    for pieces in ([data], cut(data, points)):
        seen = read_all(pieces)
        assert [(s.method, s.target, s.headers, s.body, s.ended) for s in seen] == [
            (r.method, r.target, r.expected_headers(), r.body or b"", True) for r in batch
        ]


@settings(max_examples=30, deadline=None)
@given(request=requests())
def test_valid_request_fed_one_byte_at_a_time_is_reconstructed_exactly(request: Request) -> None:
    data = request.encode()
    [seen] = read_all([data[i : i + 1] for i in range(len(data))])
    assert (seen.method, seen.target, seen.headers, seen.body, seen.ended) == (
        request.method,
        request.target,
        request.expected_headers(),
        request.body or b"",
        True,
    )
