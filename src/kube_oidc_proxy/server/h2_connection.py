"""One HTTP/2 client connection (ALPN ``h2``): frames in through the h2 library, one exchange per stream.

Every stream is a request like an HTTP/1.1 one: its head is checked by the same rules (``h2_request``),
and its exchange is the same ``Exchange``, driven through an ``H2Side``. Streams run side by side; each
has its own flow control (``h2_side``), so a watch whose client reads slowly never holds back the others.

Settings are kube-apiserver's: ``--http2-max-streams-per-connection`` concurrent streams (100), a header
list as large as an HTTP/1.1 head may be (256 KiB), 16 KiB frames, 64 KiB stream windows and a 1 MiB
connection window (Go's server). Bounds beyond what the library enforces are in ``h2_limits``.

A frame the library refuses (malformed headers, a window overflow, an HPACK bomb, a CONTINUATION flood,
too many streams) ends the connection with GOAWAY and the library's error code, and an AuFail line.

Timers: with no stream open, the connection closes after ``IDLE_TIMEOUT_SECONDS`` (a client that only
pings is idle). Shutdown sends GOAWAY at once (no new streams), lets running ones finish, ends watches
at their next event boundary, and closes when none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.headers import Headers, get_one
from kube_oidc_proxy.http1.request import DEFAULT_MAX_HEAD_BYTES
from kube_oidc_proxy.http1.serialize import status_headers
from kube_oidc_proxy.server import readpause
from kube_oidc_proxy.server.contracts import ConnectionServer
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.h2_limits import ControlFrameBacklog, ResetBudget, running_limit
from kube_oidc_proxy.server.h2_request import request_head
from kube_oidc_proxy.server.h2_side import H2Side
from kube_oidc_proxy.server.timers import ConnectionTimer
from kube_oidc_proxy.server.upstream import tune_socket
from kube_oidc_proxy.status import status_body

log = logging.getLogger("kop.connection")

STREAM_WINDOW: Final = 65_535  # the protocol's initial window: the request body high-water mark covers it
CONNECTION_WINDOW: Final = 1024 * 1024  # Go's server (initialConnRecvWindowSize)
# Bytes waiting for a client that does not read, past which nothing more is read from it until it does.
# The library answers some frames on its own, without an event to count (a RST_STREAM for each DATA frame
# on a closed stream): this bounds what those can queue.
MAX_UNREAD_OUTPUT: Final = 1024 * 1024
_ErrorCodes = h2.errors.ErrorCodes


def peer_ip_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class H2ClientConnection(asyncio.Protocol):
    def __init__(self, server: ConnectionServer, max_streams: int) -> None:
        self.server = server
        self.max_streams = max_streams
        self.transport: asyncio.Transport  # set in connection_made, before any other callback
        self.peer_ip = ""
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,  # built here, lower-case, hop-by-hop fields already dropped
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config)
        self.sides: dict[int, H2Side] = {}  # streams whose exchange is running (reset ones included)
        self.timer = ConnectionTimer(self._timed_out)
        self.resets: ResetBudget
        self.controls = ControlFrameBacklog()
        self.stopping = False
        self.closed = False
        self.client_full = False
        self.over_capacity = False  # over --max-client-connections: the first request is refused
        self._goaway_at: int | None = None  # the last stream served after a graceful GOAWAY
        self._client_leaving = False  # the client sent GOAWAY: close when its streams are done
        self.reading_paused = False  # past MAX_UNREAD_OUTPUT: until the client reads again

    # asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer_ip = peer_ip_of(transport)
        self.resets = ResetBudget(self.max_streams, asyncio.get_running_loop().time())
        tune_socket(transport)
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: self.max_streams,
                codes.MAX_HEADER_LIST_SIZE: DEFAULT_MAX_HEAD_BYTES,
                codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        # The library applies our header list limit only once the client acknowledges our SETTINGS; a
        # first request with a large token may come before that.
        self.h2.decoder.max_header_list_size = DEFAULT_MAX_HEAD_BYTES
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65_535)
        self._flush()
        self.server.connection_opened(self)
        self.timer.idle()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        try:
            for event in events:
                self._dispatch(event)
                if self.closed or self.transport.is_closing():
                    return
        except Exception:  # a bug must cost this connection, never the process
            log.exception("internal error on an HTTP/2 connection from %s", self.peer_ip)
            self.abort()
            return
        self._flush()
        if self.client_full and self.transport.get_write_buffer_size() > MAX_UNREAD_OUTPUT:
            self.reading_paused = True
            readpause.pause_reading(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.timer.cancel()
        self.server.connection_closed(self)
        for side in list(self.sides.values()):
            side.reset = True
            side.exchange.client_lost()

    def pause_writing(self) -> None:
        self.client_full = True
        for side in self.sides.values():
            side.update_blocked()

    def resume_writing(self) -> None:
        self.client_full = False
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            readpause.resume_reading(self.transport)
        for side in list(self.sides.values()):
            side.update_blocked()

    # frames ---------------------------------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            side = self.sides.get(event.stream_id)
            if side is not None and not side.reset:
                side.received(event.data, event.flow_controlled_length)
            elif event.flow_controlled_length:  # a stream nobody reads any more: the connection's window back
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event.stream_id, event.headers, ended=event.stream_ended is not None)
        elif isinstance(event, h2.events.StreamEnded):
            side = self.sides.get(event.stream_id)
            if side is not None:
                side.client_ended = True
                side.exchange.body.complete()
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                side = self.sides.get(event.stream_id)
                if side is not None:
                    self.send_pending(side)
            else:
                for side in list(self.sides.values()):
                    if side.pending:
                        self.send_pending(side)
        elif isinstance(event, h2.events.PingReceived | h2.events.RemoteSettingsChanged):
            if self._answered() and isinstance(event, h2.events.RemoteSettingsChanged):
                # a new initial window may free streams
                for side in list(self.sides.values()):
                    if side.pending:
                        self.send_pending(side)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._client_leaving = True
            if not self.sides:
                self.close()

    def _answered(self) -> bool:
        """One more frame queued for the client because of what it sent (a PING or SETTINGS answer, a stream
        refused); False, and the connection cut, once too many wait behind a client that does not read."""
        if self.controls.answered(client_reading=not self.client_full):
            return True
        log.warning("closing an HTTP/2 connection from %s: it does not read our answers", self.peer_ip)
        self.server.access_log.refused(self.peer_ip, 400, "HTTP/2 control frame flood")
        self.abort()
        return False

    def _on_request(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        self.timer.cancel()
        if not self._answered():  # a stream is answered or refused at once, whatever it asks
            return
        if self._goaway_at is not None and stream_id > self._goaway_at:
            self._reset_stream(stream_id, _ErrorCodes.REFUSED_STREAM)  # after our GOAWAY: the client retries
        elif len(self.sides) >= running_limit(self.max_streams):
            self._reset_stream(stream_id, _ErrorCodes.REFUSED_STREAM)  # reset ones still working: see h2_limits
        else:
            self._start(stream_id, fields, ended=ended)
        if not self.sides and not self.closed and not self.stopping:
            self.timer.idle()

    def _start(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        try:
            head = request_head(fields, ended=ended)
        except ClientProtocolError as exc:
            target = get_one(fields, b":path") or b"-"
            self.server.access_log.refused(self.peer_ip, exc.code, exc.detail, target)
            log.info("bad request from %s: %s", self.peer_ip, exc.detail)
            self._refuse_stream(stream_id, exc.code, exc.message, ended=ended)
            return
        if self.over_capacity:
            self.server.connection_refused(self.peer_ip, head.target)
            message = "this proxy is serving as many connections as it is allowed; retry shortly"
            self._refuse_stream(stream_id, 503, message, ended=ended, extra=[(b"retry-after", b"1")])
            self._go_away(_ErrorCodes.NO_ERROR)
            return
        side = H2Side(self, stream_id)
        exchange = side.exchange = Exchange(self.server, side, head)
        self.sides[stream_id] = side
        side.client_ended = ended
        if self.client_full:
            side.update_blocked()
        exchange.task = self.server.spawn(exchange.run())

    def _on_reset(self, stream_id: int) -> None:
        side = self.sides.get(stream_id)
        if side is None:
            return
        side.reset = True
        side.release_window()
        side.pending = None
        side.pending_bytes = 0
        if not side.response_ended and not self.resets.reset(asyncio.get_running_loop().time()):
            log.warning("closing an HTTP/2 connection from %s: too many streams reset", self.peer_ip)
            self.server.access_log.refused(self.peer_ip, 400, "HTTP/2 streams reset too often (rapid reset)")
            self._go_away(_ErrorCodes.ENHANCE_YOUR_CALM)
        side.exchange.client_lost()

    # for the streams (H2Streams) ------------------------------------------------------------------

    def send_informational(self, side: H2Side) -> None:
        if not side.reset:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.send_headers(side.stream_id, [(b":status", b"100")])
                self._flush()

    def send_head(self, side: H2Side, status: int, headers: Headers, *, end: bool) -> None:
        if side.reset or self.closed:
            return
        fields = [(b":status", b"%d" % status), *((name.lower(), value) for name, value in headers)]
        try:
            self.h2.send_headers(side.stream_id, fields, end_stream=end)
        except h2.exceptions.ProtocolError:  # the stream or connection is over: nothing more is sent
            side.reset = True
            return
        self._flush()

    def send_pending(self, side: H2Side) -> None:
        """Send what the stream's and connection's windows allow; the end once nothing waits."""
        if side.reset or self.closed:
            return
        conn, stream_id, pending = self.h2, side.stream_id, side.pending
        try:
            while pending:
                room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if room <= 0:
                    break
                data = pending[0]
                if len(data) <= room:
                    pending.popleft()
                else:
                    pending[0] = data[room:]
                    data = data[:room]
                side.pending_bytes -= len(data)
                conn.send_data(stream_id, data)
            if side.end_pending and not pending:
                side.end_pending = False
                conn.end_stream(stream_id)
                side.response_ended = True
                self.resets.answered()
        except h2.exceptions.ProtocolError:
            side.reset = True
        self._flush()
        if side.exchange_over and not side.end_pending:
            self._retire(side)
        elif not side.reset:
            side.update_blocked()

    def acknowledge(self, side: H2Side, length: int) -> None:
        if length and not self.closed:
            self.h2.acknowledge_received_data(length, side.stream_id)
            self._flush()

    def reset(self, side: H2Side) -> None:
        """The response cannot be completed: the client sees the stream fail."""
        if not side.reset:
            side.reset = True
            self._reset_stream(side.stream_id, _ErrorCodes.INTERNAL_ERROR)

    def exchange_finished(self, side: H2Side) -> None:
        side.exchange_over = True
        if side.end_pending and not side.reset and not self.closed:
            return  # the end of its answer waits for the client's window: retired once it is sent
        self._retire(side)

    def _retire(self, side: H2Side) -> None:
        self.sides.pop(side.stream_id, None)
        side.release_window()
        if not side.reset and not self.closed:
            if not side.response_ended:
                self._reset_stream(side.stream_id, _ErrorCodes.CANCEL)  # no complete answer: never looks whole
            elif not side.client_ended:
                # answered before the request was whole (RFC 9113 §8.1): the client may stop sending it
                self._reset_stream(side.stream_id, _ErrorCodes.NO_ERROR)
        if not self.sides:
            if self.stopping or self._client_leaving:
                self.close()
            elif not self.closed:
                self.timer.idle()

    # ProxyServer's view ---------------------------------------------------------------------------

    @property
    def watches(self) -> int:
        return sum(1 for side in self.sides.values() if side.exchange.streaming)

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY now; running streams finish, watches end at their next event boundary."""
        if self.stopping or self.closed:
            return
        self.stopping = True
        self._graceful_goaway()
        if not self.sides:
            self.close()
            return
        for side in list(self.sides.values()):
            if side.exchange.streaming:
                side.exchange.end_stream()

    def close(self) -> None:
        if not self.closed:
            self.timer.cancel()
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        if not self.closed:
            self.timer.cancel()
            self.transport.abort()

    # endings --------------------------------------------------------------------------------------

    def _graceful_goaway(self) -> None:
        """GOAWAY without ending the library's connection (its own GOAWAY would refuse every later frame):
        streams up to the last one received are still served."""
        self._flush()
        self._goaway_at = self.h2.highest_inbound_stream_id
        frame = GoAwayFrame(0)
        frame.last_stream_id = self._goaway_at
        frame.error_code = _ErrorCodes.NO_ERROR
        if not self.transport.is_closing():
            self.transport.write(frame.serialize())

    def _go_away(self, code: h2.errors.ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(code)
        self.close()

    def _protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        code = getattr(exc, "error_code", _ErrorCodes.PROTOCOL_ERROR)
        self.server.access_log.refused(self.peer_ip, 400, f"HTTP/2 protocol error: {exc}")
        log.info("HTTP/2 protocol error from %s: %s", self.peer_ip, exc)
        self._go_away(code)

    def _refuse_stream(
        self, stream_id: int, code: int, message: str, *, ended: bool, extra: Headers | None = None
    ) -> None:
        body = status_body(code, message)
        fields = [(b":status", b"%d" % code), *((n.lower(), v) for n, v in status_headers(body) + (extra or []))]
        try:
            self.h2.send_headers(stream_id, fields)
            self.h2.send_data(stream_id, body, end_stream=True)
            if not ended:
                self.h2.reset_stream(stream_id, _ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:  # a window too small even for a Status: the stream just fails
            self._reset_stream(stream_id, _ErrorCodes.REFUSED_STREAM)
        self._flush()

    def _reset_stream(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, code)
        self._flush()

    def _timed_out(self) -> None:
        if not self.sides and not self.closed:
            self._go_away(_ErrorCodes.NO_ERROR)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)
