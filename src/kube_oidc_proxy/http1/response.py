"""Response reader: upstream bytes in, ``ResponseEvent``s out, over llhttp (httptools).

The reader is told, per request, whether the response can have a body (not for HEAD). llhttp cannot be
told that, so for HEAD we end the message at the head and mark the connection unusable
(``must_close``): the caller drops it instead of pooling it. Interim 1xx responses other than 101 are
skipped (we never forward ``Expect: 100-continue``, so they are only ever 103 Early Hints).
A chunk boundary is reported (``ChunkEnd``) so a watch can be ended cleanly on shutdown.
"""

from __future__ import annotations

from typing import Final

import httptools

from kube_oidc_proxy.errors import UnaskedSwitch, UpstreamError
from kube_oidc_proxy.http1.events import (
    CHUNK_END,
    MESSAGE_END,
    Body,
    Framing,
    ResponseEvent,
    ResponseHead,
    Upgraded,
)
from kube_oidc_proxy.http1.headers import Headers

# kube-apiserver writes a few hundred bytes of headers; this only stops a broken upstream.
MAX_RESPONSE_HEAD_BYTES: Final = 1024 * 1024


class ResponseReader:
    __slots__ = (
        "_chunk_has_data",
        "_ended",
        "_events",
        "_head_bytes",
        "_head_only",
        "_headers",
        "_parser",
        "_reason",
        "_skip_message",
        "_status",
        "framing",
        "must_close",
        "upgraded",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._events: list[ResponseEvent] = []
        self._status = 0
        self._reason = b""
        self._headers: Headers = []
        self._head_bytes = 0
        self._skip_message = False  # inside an interim 1xx response
        self._chunk_has_data = False
        self._head_only = False
        self._ended = False
        self.framing: Framing = "none"
        self.must_close = False
        self.upgraded = False

    def expect(self, *, head_only: bool) -> None:
        """Get ready for the response to the next request (``head_only`` for HEAD)."""
        self._head_only = head_only
        self._ended = False

    def feed(self, data: bytes) -> list[ResponseEvent]:
        events = self._events = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgraded = True
            events.append(Upgraded(data[exc.args[0] :]))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, UpstreamError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            if self._ended and self.must_close:
                return events  # bytes after a HEAD response's head: the connection is dropped anyway
            if self._status == 101:  # llhttp stops after every 101, and calls it an error without Upgrade headers
                raise UnaskedSwitch("it names no protocol (no Upgrade with Connection: upgrade)") from None
            raise UpstreamError("malformed response from kube-apiserver", f"unparsable response: {exc}") from None
        return events

    def eof(self) -> list[ResponseEvent]:
        """The upstream closed: that ends a read-until-close body, and is an error anywhere else."""
        if self.framing == "close" and not self._ended:
            self._ended = True
            return [MESSAGE_END]
        return []

    @property
    def ended(self) -> bool:
        return self._ended

    # llhttp callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._status = 0
        self._reason = b""
        self._headers = []
        self._head_bytes = 0

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_RESPONSE_HEAD_BYTES:
            raise UpstreamError("response headers from kube-apiserver too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        status: int = parser.get_status_code()
        self._status = status
        if 100 <= status < 200 and status != 101:
            self._skip_message = True
            return
        self._skip_message = False
        content_length: int | None = None
        framing: Framing
        chunked = False
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                content_length = int(value)
            elif lname == b"transfer-encoding":
                # Only chunked is a coding we relay (Go's transport refuses others the same way).
                if value.rsplit(b",", 1)[-1].strip().lower() != b"chunked":
                    raise UpstreamError("kube-apiserver used an unsupported transfer coding")
                chunked = True
        if status == 101 or status in (204, 304) or self._head_only:
            framing = "none"
        elif chunked:
            framing = "chunked"
        elif content_length is not None:
            framing = "length" if content_length else "none"
        else:
            framing = "close"
        self.framing = framing
        keep_alive = bool(parser.should_keep_alive()) and framing != "close"
        if self._head_only or not keep_alive:
            self.must_close = True
        self._events.append(
            ResponseHead(
                status=status,
                reason=self._reason,
                http_version=parser.get_http_version(),
                headers=self._headers,
                keep_alive=keep_alive,
                framing=framing,
                content_length=content_length,
            )
        )
        if self._head_only:
            self._ended = True
            self._events.append(MESSAGE_END)

    def on_body(self, data: bytes) -> None:
        if data and not self._skip_message and not self._head_only:
            self._chunk_has_data = True
            self._events.append(Body(data))

    def on_chunk_header(self) -> None:
        self._chunk_has_data = False

    def on_chunk_complete(self) -> None:
        # The last-chunk (0) is not a chunk (RFC 9112 §7.1): only data chunks have an end.
        if self._chunk_has_data and not self._skip_message:
            self._events.append(CHUNK_END)

    def on_message_complete(self) -> None:
        if self._skip_message:
            self._skip_message = False
            return
        if not self._head_only and self._status != 101:
            self._ended = True
            self._events.append(MESSAGE_END)
