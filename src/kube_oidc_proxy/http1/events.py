"""Events the readers produce. Frozen and slotted: built once per message, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kube_oidc_proxy.http1.headers import Headers

# How a message body is delimited (RFC 9112 §6.3).
Framing = Literal["none", "length", "chunked", "close"]


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: bytes
    target: bytes
    http_version: str  # "1.0", "1.1", or "2" (an HTTP/2 stream)
    headers: Headers  # lower-case names, order and repeats kept
    keep_alive: bool
    upgrade: bool  # Connection: Upgrade + Upgrade: <protocol>; the body-less handshake of exec & co.
    framing: Framing
    content_length: int | None
    expect_continue: bool
    head_size: int  # bytes of request line and headers, for limits and logs


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: bytes
    http_version: str
    headers: Headers  # names as received (case kept), order and repeats kept
    keep_alive: bool
    framing: Framing
    content_length: int | None


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkEnd:
    """The upstream finished one chunk of a chunked body: a safe place to cut a watch stream."""


@dataclass(frozen=True, slots=True)
class MessageEnd:
    pass


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The message switched protocols; ``tail`` holds bytes already received past the head."""

    tail: bytes


RequestEvent = RequestHead | Body | MessageEnd | Upgraded
ResponseEvent = ResponseHead | Body | ChunkEnd | MessageEnd | Upgraded

CHUNK_END = ChunkEnd()
MESSAGE_END = MessageEnd()
