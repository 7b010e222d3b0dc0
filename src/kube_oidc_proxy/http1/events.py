"""Events the readers produce. Slotted, and frozen to the type checker: built once per message, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar, dataclass_transform

from kube_oidc_proxy.http1.headers import Headers

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def event(cls: type[_T]) -> type[_T]:
    """A slotted dataclass that mypy holds frozen. Frozen at run time too, it would set each field through
    ``object.__setattr__``: a request head (ten fields) cost ~15,000 instructions to make, ten times a plain
    one, and every request makes a head, a response head and a few more."""
    return dataclass(slots=True)(cls)


# How a message body is delimited (RFC 9112 §6.3).
Framing = Literal["none", "length", "chunked", "close"]


@event
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


@event
class ResponseHead:
    status: int
    reason: bytes
    http_version: str
    headers: Headers  # names as received (case kept), order and repeats kept
    keep_alive: bool
    framing: Framing
    content_length: int | None


@event
class Body:
    data: bytes


@event
class ChunkEnd:
    """The upstream finished one chunk of a chunked body: a safe place to cut a watch stream."""


@event
class MessageEnd:
    pass


@event
class Upgraded:
    """The message switched protocols; ``tail`` holds bytes already received past the head."""

    tail: bytes


RequestEvent = RequestHead | Body | MessageEnd | Upgraded
ResponseEvent = ResponseHead | Body | ChunkEnd | MessageEnd | Upgraded

CHUNK_END = ChunkEnd()
MESSAGE_END = MessageEnd()
