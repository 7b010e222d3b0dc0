"""The probe and metrics listener's limits, pushed past with real sockets: a head that never ends, an
answer that never comes, more connections than the cap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.server.plainhttp import Handler, Limits, Reply, start_plain_server

GENEROUS = 5.0  # how long a test waits for something that must happen much sooner


async def ok(head: RequestHead) -> Reply:
    return Reply(200, b"text/plain", b"ok " + head.target + b"\n")


@asynccontextmanager
async def listening(limits: Limits, handler: Handler = ok) -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()
    server = await start_plain_server("127.0.0.1", 0, handler, tasks, what="test", limits=limits)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def everything_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (a reset after nothing counts as nothing)."""
    try:
        return await asyncio.wait_for(reader.read(), GENEROUS)
    except ConnectionResetError:
        return b""


async def get(port: int, path: str = "/healthz") -> bytes:
    reader, writer = await connect(port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    try:
        return await everything_until_closed(reader)
    finally:
        writer.close()


async def test_a_client_that_sends_half_a_head_is_cut_at_the_head_timeout() -> None:
    async with listening(Limits(head_timeout=0.2)) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: pro")
        started = time.monotonic()
        assert await everything_until_closed(reader) == b""
        assert time.monotonic() - started >= 0.15  # cut by the timer, not at once
        writer.close()
        assert (await get(port)).startswith(b"HTTP/1.1 200 ")  # a client that sends its head is answered


async def test_a_client_that_sends_nothing_is_cut_at_the_head_timeout() -> None:
    async with listening(Limits(head_timeout=0.2)) as port:
        reader, writer = await connect(port)
        assert await everything_until_closed(reader) == b""
        writer.close()


async def test_an_answer_slower_than_the_connection_timeout_is_cut_and_its_handler_cancelled() -> None:
    cancelled = asyncio.Event()

    async def never(head: RequestHead) -> Reply:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    async with listening(Limits(connection_timeout=0.3), never) as port:
        assert await get(port) == b""
        await asyncio.wait_for(cancelled.wait(), GENEROUS)


async def test_a_full_head_is_not_cut_by_the_head_timeout_while_it_is_answered() -> None:
    release = asyncio.Event()

    async def slow(head: RequestHead) -> Reply:
        await release.wait()
        return await ok(head)

    async with listening(Limits(head_timeout=0.1), slow) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /ready HTTP/1.1\r\nHost: probe\r\n\r\n")
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, release.set)  # answered after the head timeout has passed
        assert (await everything_until_closed(reader)).startswith(b"HTTP/1.1 200 ")
        writer.close()


async def test_connections_beyond_the_cap_are_closed_at_once_while_the_others_are_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "kop.probe")
    async with listening(Limits(max_connections=2)) as port:
        held = [await connect(port), await connect(port)]  # accepted in order: these two fill the cap
        reader, writer = await connect(port)
        assert await everything_until_closed(reader) == b""  # refused without waiting for any timeout
        writer.close()
        for held_reader, held_writer in held:
            held_writer.write(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n")
            assert (await everything_until_closed(held_reader)).startswith(b"HTTP/1.1 200 ")
            held_writer.close()
        # the answered ones freed their places: a new probe gets in (the kubelet retries at its next period)
        assert (await get_once_admitted(port)).startswith(b"HTTP/1.1 200 ")
    assert "test listener: 2 connections open, its limit; closing new ones" in caplog.text


async def get_once_admitted(port: int) -> bytes:
    """Retry while refused: a place frees when the server has seen an answered connection close."""
    deadline = time.monotonic() + GENEROUS
    while True:
        answer = await get(port)
        if answer or time.monotonic() > deadline:
            return answer
