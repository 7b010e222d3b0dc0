"""Request reader: client bytes in, ``RequestEvent``s out, over llhttp (httptools).

Contract: ``feed(data)`` returns the events that ``data`` completed, in order; it raises
``ClientProtocolError`` (or a subclass) on anything we refuse, after which the reader is unusable and the
connection must be closed. The requests ``data`` completed before the error are not lost with it: their events
(up to the last ``MessageEnd``) are in ``completed_before_error``, to be answered before the refusal, as Go's
server answers them (it reads one request at a time). After an ``Upgraded`` event the reader parses nothing
more: the remaining bytes belong to the tunnel and are carried in the event's ``tail``.

llhttp already rejects request smuggling material: Content-Length together with Transfer-Encoding,
duplicate Content-Length, obs-fold, bare CR or LF, NUL and other control bytes in values, a final
Transfer-Encoding other than chunked (RFC 9112 §6.3), control bytes and bytes above 0x7E in the target. We
add what it does not check: size limits (it has none; also on a body's framing and trailers), ``chunked``
alone as a transfer coding (as Go), a Host header (RFC 9112 §3.2), origin-form targets whose path Go's
``url.ParseRequestURI`` can decode (kube-apiserver answers a bad %-escape there with 400 before any handler:
forwarded, it would be audited here as a request kube-apiserver never served), no CONNECT, no body on an
upgrade handshake, an upgrade only to what kube-apiserver serves, and a ``Connection`` header that names no
header the proxy owns (framing, routing, credentials, identity: ``headers.PROXY_OWNED``).
"""

from __future__ import annotations

from typing import Final

import httptools

from kube_oidc_proxy.errors import (
    ClientProtocolError,
    HeadersTooLarge,
    HTTPVersionNotSupported,
    MethodNotAllowed,
    NotImplementedCoding,
)
from kube_oidc_proxy.http1.events import (
    MESSAGE_END,
    Body,
    Framing,
    RequestEvent,
    RequestHead,
    Upgraded,
)
from kube_oidc_proxy.http1.headers import Headers, comma_tokens, is_proxy_owned
from kube_oidc_proxy.requestinfo import path_escape_error

# kube-apiserver accepts 1 MiB of headers (Go's DefaultMaxHeaderBytes). Id tokens with hundreds of groups
# reach 64 KiB; 256 KiB leaves room for that and more while keeping what one slow client can pin small,
# and whatever we accept still fits under the API server's own limit after we add our headers.
DEFAULT_MAX_HEAD_BYTES: Final = 256 * 1024
# Real clients send 10-20 headers; this only stops a flood of tiny ones.
DEFAULT_MAX_HEADERS: Final = 256
# What kube-apiserver serves after a 101 (exec, attach, cp, port-forward), compared as it does, case-blind.
# Anything else, h2c included, is refused rather than passed on for the next hop to interpret.
UPGRADE_PROTOCOLS: Final = frozenset({b"spdy/3.1", b"websocket"})
# Bytes of a body that carry no data (chunk-size lines, extensions, trailer fields) in a row. llhttp buffers
# an unfinished trailer field without limit; real chunk framing is a few bytes between pieces of data.
MAX_BODY_BYTES_WITHOUT_DATA: Final = 64 * 1024

_IDLE, _HEAD, _BODY, _UPGRADED = range(4)


class RequestReader:
    """One per client connection; handles keep-alive and pipelined requests in sequence."""

    __slots__ = (
        "_bytes_without_data",
        "_events",
        "_fed_body",
        "_head_bytes",
        "_head_ended",
        "_headers",
        "_max_head_bytes",
        "_max_headers",
        "_parser",
        "_state",
        "_unparsed_head",
        "_url",
        "completed_before_error",
    )

    def __init__(self, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES, max_headers: int = DEFAULT_MAX_HEADERS) -> None:
        self._max_head_bytes = max_head_bytes
        self._max_headers = max_headers
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[RequestEvent] = []
        self._state = _IDLE
        self._url = b""
        self._headers: Headers = []
        self._head_bytes = 0  # bytes of completed head pieces of the current message
        self._unparsed_head = 0  # upper bound of bytes llhttp holds for an unfinished piece
        self._fed_body = 0  # body bytes delivered by the current feed
        self._bytes_without_data = 0  # body framing since the last body data (trailers, chunk lines)
        self._head_ended = False  # a head completed during the current feed
        self.completed_before_error: list[RequestEvent] = []  # see the module's contract

    @property
    def in_head(self) -> bool:
        """True while a request head has begun but is not complete (for the header-read timeout)."""
        return self._state == _HEAD

    @property
    def upgraded(self) -> bool:
        """True after an upgrade request: what follows is the tunnel's, not HTTP."""
        return self._state == _UPGRADED

    def feed(self, data: bytes | memoryview) -> list[RequestEvent]:
        try:
            return self._feed(data)
        except ClientProtocolError:
            events = self._events
            ends = [i for i, event in enumerate(events) if event is MESSAGE_END]
            self.completed_before_error = events[: ends[-1] + 1] if ends else []
            raise

    def _feed(self, data: bytes | memoryview) -> list[RequestEvent]:
        if self._state == _UPGRADED:
            raise RuntimeError("reader fed after an upgrade")
        events = self._events = []
        pieces_before = self._head_bytes
        self._fed_body = 0
        self._head_ended = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._state = _UPGRADED
            events.append(Upgraded(bytes(data[exc.args[0] :])))
            return events
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientProtocolError):
                raise cause from None
            raise  # a bug in a callback, not the client's fault
        except httptools.HttpParserError as exc:
            raise ClientProtocolError(f"malformed HTTP request: {exc}") from None
        if self._state == _HEAD:
            # llhttp buffers a header name or value until it is complete, without limit: bound it.
            # Body bytes of an earlier request in the same read are not part of this head.
            fed = len(data) - self._fed_body
            if self._head_bytes != pieces_before:
                self._unparsed_head = fed
            else:
                self._unparsed_head += fed
            if self._head_bytes + self._unparsed_head > 2 * self._max_head_bytes:
                raise HeadersTooLarge("request header fields too large")
        elif self._state == _BODY and not self._head_ended:  # (a feed that ended a head is not all body)
            without_data = len(data) - self._fed_body
            self._bytes_without_data = without_data if self._fed_body else self._bytes_without_data + without_data
            if self._bytes_without_data > MAX_BODY_BYTES_WITHOUT_DATA:
                raise ClientProtocolError("request body framing or trailer fields too large")
        return events

    # llhttp callbacks (synchronous, short) ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self._state = _HEAD
        self._bytes_without_data = 0
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._unparsed_head = 0

    def on_url(self, fragment: bytes) -> None:
        self._url += fragment
        self._count(len(fragment))

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp strips leading whitespace only; trailing whitespace is not part of the value either
        # (RFC 9110 §5.5), and Go's net/http, which kube-apiserver uses, trims it too.
        self._headers.append((name.lower(), value.rstrip(b" \t")))
        if len(self._headers) > self._max_headers:
            raise HeadersTooLarge(f"more than {self._max_headers} request header fields")
        self._count(len(name) + len(value) + 4)

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self._max_head_bytes:
            raise HeadersTooLarge("request header fields too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        method: bytes = parser.get_method()
        version: str = parser.get_http_version()
        headers = self._headers
        target = self._url
        if version not in ("1.1", "1.0"):
            if version.startswith("2") or version.startswith("3"):
                raise HTTPVersionNotSupported(f"HTTP/{version} is not supported here; use HTTP/1.1")
            raise ClientProtocolError("malformed HTTP request: unsupported HTTP version")
        check_target(method, target)

        host_count = 0
        content_length: int | None = None
        chunked = False
        expect_continue = False
        upgrade_offers: list[bytes] = []
        for name, value in headers:
            if name == b"connection":
                for option in comma_tokens([value]):
                    if is_proxy_owned(option.lower()):
                        raise ClientProtocolError(
                            f"the Connection header must not name {option.decode('latin-1')!r}: "
                            "this proxy sets that header itself"
                        )
            elif name == b"upgrade":
                upgrade_offers.append(value)
            elif name == b"host":
                host_count += 1
            elif name == b"content-length":
                content_length = int(value)  # llhttp checked: digits only, not repeated
            elif name == b"transfer-encoding":
                # llhttp accepts any codings before a final "chunked"; kube-apiserver (Go) accepts only
                # "chunked" itself, and we would forward the body without the other codings.
                if value.lower() != b"chunked":
                    raise NotImplementedCoding("only Transfer-Encoding: chunked is supported")
                chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if host_count > 1 or (host_count == 0 and version == "1.1"):
            raise ClientProtocolError("an HTTP/1.1 request needs exactly one Host header")

        framing: Framing = "chunked" if chunked else ("length" if content_length else "none")
        upgrade = bool(parser.should_upgrade())
        if upgrade:
            if framing != "none":
                raise ClientProtocolError("an upgrade request must not have a body")
            offered = comma_tokens(upgrade_offers)
            if len(offered) != 1 or offered[0].lower() not in UPGRADE_PROTOCOLS:
                raise ClientProtocolError("unsupported Upgrade: kube-apiserver serves SPDY/3.1 and websocket only")
        head_size = self._head_bytes + len(method) + 14  # request line and final CRLF
        self._state = _BODY
        self._head_ended = True
        self._url = b""
        self._headers = []  # now owned by the event; a long-lived connection should not keep a copy
        self._events.append(
            RequestHead(
                method=method,
                target=target,
                http_version=version,
                headers=headers,
                keep_alive=bool(parser.should_keep_alive()),
                upgrade=upgrade,
                framing=framing,
                content_length=content_length,
                expect_continue=expect_continue and framing != "none",
                head_size=head_size,
            )
        )

    def on_body(self, data: bytes) -> None:
        if data:
            self._fed_body += len(data)
            self._events.append(Body(data))

    def on_message_complete(self) -> None:
        self._state = _IDLE
        self._events.append(MESSAGE_END)


def check_target(method: bytes, target: bytes) -> None:
    if method == b"CONNECT":
        raise MethodNotAllowed("CONNECT is not supported by this proxy")
    if not target.startswith(b"/") and not (method == b"OPTIONS" and target == b"*"):
        raise ClientProtocolError("request target must be an absolute path (origin-form)")
    if (escape_error := path_escape_error(target)) is not None:
        raise ClientProtocolError(f"malformed request target: {escape_error}")
