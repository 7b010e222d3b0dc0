"""A fault-injecting TLS relay in front of an HTTPS server (the real IdP), switched by a test.

It terminates TLS with its own certificate and opens a new TLS connection to the server for each client
connection, relaying bytes unchanged: the server sees the client's ``Host`` header, so an IdP that takes
its issuer URL from the request (Keycloak with ``--hostname-strict=false``) names the relay's URL as
issuer, and tokens fetched through the relay carry the same ``iss`` as the discovery it serves.

Modes (``mode``), read when a connection is accepted:

- ``pass``: relay.
- ``refuse``: reset the connection at once (an IdP that is down: connection refused or reset).
- ``hold``: accept, say nothing for ``hold_seconds``, then relay (a slow IdP).
- ``garbage_bytes``: answer random bytes instead of a TLS handshake.
- ``garbage_http``: complete TLS, read the request, answer ``200`` with a body that is not JSON.

``accepted`` records every connection (monotonic time, mode), to count fetches over a fault's duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Literal

Mode = Literal["pass", "refuse", "hold", "garbage_bytes", "garbage_http"]
GARBAGE_BODY = b"\x00<html>not the JSON you asked for \xff\xfe" * 8


class FaultProxy:
    def __init__(self, upstream_port: int, cert: Path, key: Path, upstream_ca: Path, *, hold_seconds: float = 30.0):
        self.mode: Mode = "pass"
        self.hold_seconds = hold_seconds
        self.accepted: list[tuple[float, Mode]] = []
        self._upstream_port = upstream_port
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ctx.load_cert_chain(cert, key)
        self._client_ctx = ssl.create_default_context(cafile=str(upstream_ca))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, sock=self._listener))
        self._ready.set()
        self._loop.run_forever()

    def accepted_since(self, since: float) -> int:
        return sum(1 for at, _ in list(self.accepted) if at >= since)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self.accepted.append((time.monotonic(), mode))
        try:
            if mode == "refuse":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                writer.transport.abort()
                return
            if mode == "garbage_bytes":
                writer.write(os.urandom(512))
                await writer.drain()
                return
            if mode == "hold":
                await asyncio.sleep(self.hold_seconds)
            await writer.start_tls(self._server_ctx)
            if mode == "garbage_http":
                await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(GARBAGE_BODY)}\r\n\r\n".encode()
                    + GARBAGE_BODY
                )
                await writer.drain()
                return
            await self._relay(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or the handshake failed: nothing to relay
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self._upstream_port, ssl=self._client_ctx, server_hostname="127.0.0.1"
        )

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ssl.SSLError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        # TLS has no half-close: when either side is done, the exchange is over.
        directions = {asyncio.ensure_future(pipe(reader, up_writer)), asyncio.ensure_future(pipe(up_reader, writer))}
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            up_writer.close()
