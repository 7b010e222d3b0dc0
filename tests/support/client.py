"""Test clients that talk to the proxy over real TLS sockets; responses parsed by h11 (not our parser)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import h11


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def client_ssl(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Client:
    """One keep-alive connection; ``send_raw`` writes bytes as given, for hostile input."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int, ca_file: str, host: str = "127.0.0.1", *, receive_buffer: int = 0) -> Client:
        """``receive_buffer`` caps the socket's receive window (bytes), to play a client on a slow link."""
        if not receive_buffer:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=client_ssl(ca_file), server_hostname="localhost"
            )
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=client_ssl(ca_file), server_hostname="localhost", limit=receive_buffer
        )
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        token: str | None = None,
    ) -> Response:
        hdrs = [("host", "localhost"), *(headers or [])]
        if token is not None:
            hdrs.append(("authorization", f"Bearer {token}"))
        if body:
            hdrs.append(("content-length", str(len(body))))
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        data = self.h11.send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            data += self.h11.send(h11.Data(data=body))
        data += self.h11.send(h11.EndOfMessage())
        self.writer.write(data)
        return await self.read_response()

    async def read_response(self, timeout: float = 10) -> Response:
        status = 0
        headers: list[tuple[str, str]] = []
        body = bytearray()
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                self.h11.receive_data(data)
                continue
            if isinstance(event, h11.Response | h11.InformationalResponse):
                if event.status_code == 100:
                    continue
                status = event.status_code
                headers = [(n.decode(), v.decode("latin-1")) for n, v in event.headers]
                if status == 101:
                    return Response(status, headers, b"")
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before the response ended")

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_raw_response(self, timeout: float = 10) -> Response:
        """Parse a response to bytes sent with ``send_raw`` (a fresh h11 state)."""
        self.h11 = h11.Connection(h11.CLIENT)
        self.h11.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        self.h11.send(h11.EndOfMessage())
        return await self.read_response(timeout)

    async def read_until_closed(self, timeout: float = 10) -> bytes:
        out = bytearray()
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except (ConnectionError, ssl.SSLError):
                return bytes(out)
            if not data:
                return bytes(out)
            out += data


async def get(port: int, ca_file: str, target: str, **kwargs: Any) -> Response:
    client = await Client.connect(port, ca_file)
    try:
        return await client.request("GET", target, **kwargs)
    finally:
        await client.close()
