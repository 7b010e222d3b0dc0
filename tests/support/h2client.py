"""An HTTP/2 test client over a real TLS socket (ALPN h2), on the h2 library's client side: many streams on
one connection, responses read whole or event by event, and raw frames for hostile input."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.connection import ConnectionState
from hyperframe.frame import Frame, GoAwayFrame

from tests.support.client import Response


def h2_ssl(ca_file: str, protocols: Sequence[str] = ("h2",)) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(list(protocols))
    return ctx


@dataclass
class StreamState:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  # the error code of a RST_STREAM from the proxy
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def response(self) -> Response:
        return Response(self.status, self.headers, bytes(self.body))


class H2Client:
    """One HTTP/2 connection. ``settings``: the client's initial SETTINGS (e.g. a zero window)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: dict[Any, int]) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.streams: dict[int, StreamState] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = asyncio.Event()
        self.auto_ack = True  # hand back the window of received data at once
        self.starved: set[int] = set()  # streams whose window is never handed back (the connection's still is)
        self.remote_settings: dict[int, int] = {}
        self._outgoing: dict[int, tuple[bytearray, bool]] = {}  # body bytes waiting for the window, and the end
        # After a graceful GOAWAY (NO_ERROR) the streams it leaves running still complete (RFC 9113 §6.8), as a
        # Go client lets them; the library would refuse their every frame. It stays open for them, and for
        # tests that open a stream after it on purpose.
        receive_goaway = self.conn._frame_dispatch_table[GoAwayFrame]

        def goaway(frame: Frame) -> Any:
            before = self.conn.state_machine.state
            answer = receive_goaway(frame)
            if isinstance(frame, GoAwayFrame) and frame.error_code == 0 and before != ConnectionState.CLOSED:
                self.conn.state_machine.state = before
            return answer

        self.conn._frame_dispatch_table[GoAwayFrame] = goaway
        self._flush()
        self._reading = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls, port: int, ca_file: str, *, settings: dict[Any, int] | None = None, receive_buffer: int = 0
    ) -> H2Client:
        ctx = h2_ssl(ca_file)
        if receive_buffer:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=ctx, server_hostname="localhost", limit=receive_buffer
            )
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        sslobj = writer.get_extra_info("ssl_object")
        assert sslobj is not None and sslobj.selected_alpn_protocol() == "h2", "the proxy did not negotiate h2"
        return cls(reader, writer, settings or {})

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                for event in self.conn.receive_data(data):
                    self._on(event)
                self._flush()
        except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()
            for state in self.streams.values():
                state.changed.set()

    def _pump(self) -> None:
        """Send what the windows allow of the bodies waiting."""
        for stream_id, (data, end) in list(self._outgoing.items()):
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                while data:
                    room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                    if room <= 0:
                        break
                    self.conn.send_data(stream_id, bytes(data[:room]))
                    del data[:room]
                if not data:
                    del self._outgoing[stream_id]
                    if end:
                        self.conn.end_stream(stream_id)
        self._flush()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._pump()
        if isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings.update({int(k): v.new_value for k, v in event.changed_settings.items()})
        stream_id = getattr(event, "stream_id", None)
        state = self.streams.get(stream_id) if stream_id else None
        if state is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            for name, value in event.headers:
                if name == b":status":
                    state.status = int(value)
                else:
                    state.headers.append((name.decode(), value.decode("latin-1")))
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass
        elif isinstance(event, h2.events.DataReceived):
            state.body += event.data
            if event.stream_id in self.starved and event.flow_controlled_length:
                self.conn.increment_flow_control_window(event.flow_controlled_length)
            elif self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            state.ended = True
        elif isinstance(event, h2.events.StreamReset):
            state.reset = int(event.error_code)
        state.changed.set()

    def start(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        """Open a stream; ``end``: send END_STREAM (with the body, if any)."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
        if token is not None:
            fields.append(("authorization", f"Bearer {token}"))
        fields += [(n.lower(), v) for n, v in headers]
        self.streams[stream_id] = StreamState()
        encoded = [(n.encode(), v.encode("latin-1")) for n, v in fields]
        self.conn.send_headers(stream_id, encoded, end_stream=end and body is None)
        if body is not None:
            self.send_data(stream_id, body, end=end)
        self._flush()
        return stream_id

    def send_data(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        """Body bytes, sent as the windows allow."""
        waiting, _ = self._outgoing.get(stream_id, (bytearray(), False))
        self._outgoing[stream_id] = (waiting + data, end)
        self._pump()

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id)
        self._flush()

    def write_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def until(self, stream_id: int, done: Any, timeout: float = 20.0) -> StreamState:
        """Wait until ``done(state)`` holds for the stream (or the connection closed)."""
        state = self.streams[stream_id]

        async def wait() -> None:
            while not done(state) and not self.closed.is_set():
                state.changed.clear()
                await state.changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return state

    async def response(self, stream_id: int, timeout: float = 20.0) -> Response:
        state = await self.until(stream_id, lambda s: s.ended or s.reset is not None, timeout)
        assert state.ended, f"stream {stream_id} was reset ({state.reset}) or the connection closed"
        return state.response()

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return await self.response(self.start(method, path, **kwargs))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close_connection()
            self._flush()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._reading.cancel()
        with contextlib.suppress(BaseException):
            await self._reading
