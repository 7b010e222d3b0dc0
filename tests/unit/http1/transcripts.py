"""Helpers for feeding byte transcripts to the sans-IO readers in different splits (h11-style)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import TypeVar

from kube_oidc_proxy.http1.events import Body, Framing, RequestEvent, RequestHead, ResponseEvent, Upgraded
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.response import ResponseReader

E = TypeVar("E", RequestEvent, ResponseEvent)

HOST = b"Host: example.test\r\n"


def feed_request(pieces: Sequence[bytes], reader: RequestReader | None = None) -> list[RequestEvent]:
    """Feed ``pieces`` one after another and collect every event, stopping at an upgrade."""
    reader = reader if reader is not None else RequestReader()
    events: list[RequestEvent] = []
    for piece in pieces:
        events += reader.feed(piece)
        if events and isinstance(events[-1], Upgraded):
            break
    return events


def feed_response(
    pieces: Sequence[bytes], *, head_only: bool = False, reader: ResponseReader | None = None
) -> list[ResponseEvent]:
    if reader is None:
        reader = ResponseReader()
        reader.expect(head_only=head_only)
    events: list[ResponseEvent] = []
    for piece in pieces:
        events += reader.feed(piece)
        if events and isinstance(events[-1], Upgraded):
            break
    return events


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at_every_position(data: bytes) -> Iterator[list[bytes]]:
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]


def pieces_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def merge_bodies(events: Sequence[E]) -> list[E]:
    """Join adjacent ``Body`` events: how a body is cut into events depends on how the bytes arrived."""
    out: list[E] = []
    for event in events:
        if isinstance(event, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def without_head_size(events: Sequence[RequestEvent]) -> list[RequestEvent]:
    """Events with ``RequestHead.head_size`` zeroed, for comparing with a hand-written transcript."""
    return [dataclasses.replace(e, head_size=0) if isinstance(e, RequestHead) else e for e in merge_bodies(events)]


def head(
    method: bytes = b"GET",
    target: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    http_version: str = "1.1",
    keep_alive: bool = True,
    upgrade: bool = False,
    framing: Framing = "none",
    content_length: int | None = None,
    expect_continue: bool = False,
) -> RequestHead:
    """An expected ``RequestHead`` (``head_size`` 0, see ``without_head_size``)."""
    return RequestHead(
        method=method,
        target=target,
        http_version=http_version,
        headers=headers if headers is not None else [(b"host", b"example.test")],
        keep_alive=keep_alive,
        upgrade=upgrade,
        framing=framing,
        content_length=content_length,
        expect_continue=expect_continue,
        head_size=0,
    )
