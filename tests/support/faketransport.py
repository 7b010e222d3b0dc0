"""A transport for driving a client connection without sockets: it records what is written, delivers nothing
by itself, and tells the connection it was lost on the next loop turn after a close, as asyncio's do."""

from __future__ import annotations

import asyncio
from typing import Any


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.closing = False
        self.conn: asyncio.Protocol | None = None  # told of the close

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.written += data

    def writelines(self, data: list[bytes]) -> None:
        for piece in data:
            self.write(piece)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            assert self.conn is not None
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    abort = close

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0  # written at once: the tests play a client that is full with pause_writing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default
