"""Hostile HTTP/2 input: every attack is answered (GOAWAY, RST_STREAM or a Kubernetes Status), nothing that
was not verified reaches kube-apiserver, a refused request leaves an AuFail line, buffers stay bounded, and
the proxy goes on serving: a fresh connection afterwards gets its 200."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import h2.errors
import h2.settings
import pytest
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, PingFrame, SettingsFrame

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.request import DEFAULT_MAX_HEAD_BYTES
from kube_oidc_proxy.server import h2_limits, requestbody, timers
from kube_oidc_proxy.server.h2_connection import MAX_UNREAD_OUTPUT, H2ClientConnection
from kube_oidc_proxy.server.h2_limits import RESETS_REGAINED_PER_SECOND, running_limit
from kube_oidc_proxy.server.h2_side import HIGH_WATER, H2Side
from tests.conftest import ProxyHandle, start_proxy
from tests.support import waiting
from tests.support.client import Client, get
from tests.support.h2client import H2Client, StreamState, h2_ssl
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

Codes = h2.errors.ErrorCodes
SettingCodes = h2.settings.SettingCodes


# helpers ------------------------------------------------------------------------------------------------

# These attacks are pushed hard on a small machine: a longer guard than the usual 10 s.
until = functools.partial(waiting.until, timeout=20.0)


@contextlib.asynccontextmanager
async def h2_client(proxy: ProxyHandle, **kwargs: object) -> AsyncIterator[H2Client]:
    client = await H2Client.connect(proxy.port, proxy.ca_file, **kwargs)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.close()


async def ended(client: H2Client) -> None:
    """The proxy ended the connection (GOAWAY, then its close): what the client notices."""
    await asyncio.wait_for(client.closed.wait(), 20)


def h2_connections(proxy: ProxyHandle) -> list[H2ClientConnection]:
    return [c for c in proxy.app.proxy.connections if isinstance(c, H2ClientConnection)]


async def still_serves(proxy: ProxyHandle) -> None:
    """The process is fine: a fresh HTTP/2 connection gets its 200, and so does HTTP/1.1."""
    async with h2_client(proxy) as fresh:
        response = await fresh.request("GET", "/api", token=proxy.issuer.token())
        assert response.status == 200
        assert response.json()["kind"] == "APIVersions"
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200


async def side_of(conn: H2ClientConnection, stream_id: int) -> H2Side:
    await until(lambda: stream_id in conn.sides, f"stream {stream_id} to start")
    return conn.sides[stream_id]


def forwarded(proxy: ProxyHandle, prefix: str) -> list[str]:
    return [r.target for r in proxy.upstream.requests if r.target.startswith(prefix)]


def request_fields(path: str, token: str | None = None, method: str = "GET") -> list[tuple[bytes, bytes]]:
    fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", b"localhost")]
    fields.append((b":path", path.encode()))
    if token is not None:
        fields.append((b"authorization", f"Bearer {token}".encode()))
    return fields


def send_fields(client: H2Client, fields: Sequence[tuple[bytes, bytes]], *, end: bool = True) -> int:
    """A header block exactly as given (names not lower-cased, nothing checked by the client's library)."""
    config = client.conn.config
    config.validate_outbound_headers = config.normalize_outbound_headers = False
    try:
        stream_id = client.conn.get_next_available_stream_id()
        client.streams[stream_id] = StreamState()
        client.conn.send_headers(stream_id, list(fields), end_stream=end)
        client.write_raw(client.conn.data_to_send())
    finally:
        config.validate_outbound_headers = config.normalize_outbound_headers = True
    return stream_id


def status_of(state: StreamState) -> dict[str, object]:
    status = json.loads(bytes(state.body))
    assert isinstance(status, dict)
    assert (status["kind"], status["status"]) == ("Status", "Failure")
    return status


def hpack_integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1: ``value`` with a ``prefix_bits``-bit prefix, the other bits of the first byte ``first``."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out = bytearray([first | top])
    value -= top
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


async def proxy_with(config: Config, issuer: TestIssuer, upstream: RecordingUpstream, **changes: object) -> ProxyHandle:
    serving = {k: v for k, v in changes.items() if k in ("http2", "http2_max_streams")}
    others = {k: v for k, v in changes.items() if k not in serving}
    config = replace(config, serving=replace(config.serving, **serving), proxy=replace(config.proxy, **others))  # type: ignore[arg-type]
    return await start_proxy(config, issuer, upstream)


# 1. rapid reset (CVE-2023-44487) --------------------------------------------------------------------------


async def test_a_thousand_streams_opened_and_reset_in_one_write_get_enhance_your_calm(
    proxy: ProxyHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kop.connection")
    token = proxy.issuer.token()
    async with h2_client(proxy) as client:
        assert (await client.request("GET", "/api", token=token)).status == 200
        for n in range(1000):
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream_id, request_fields(f"/rapid/{n}", token), end_stream=True)
            client.conn.reset_stream(stream_id)
        client.write_raw(client.conn.data_to_send())
        await ended(client)
        assert client.goaway is not None
        assert client.goaway.error_code == Codes.ENHANCE_YOUR_CALM
    await until(lambda: not h2_connections(proxy), "the connection to be gone")
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert "too many streams reset" in caplog.text
    await still_serves(proxy)
    assert len(forwarded(proxy, "/rapid/")) < running_limit(100)


async def test_rapid_reset_of_requests_already_forwarded_is_cut_within_the_budget(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    """The real attack: each stream reset once its work has begun (here: once kube-apiserver has it)."""
    proxy = await proxy_with(config, issuer, upstream, http2_max_streams=5)
    token = issuer.token()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with h2_client(proxy) as client:
            for round_ in range(100):  # five streams at a time (the limit), reset once all are forwarded
                streams = [client.start("GET", f"/held/{round_}-{i}", token=token) for i in range(5)]

                def begun(round_: int = round_, streams: list[int] = streams) -> bool:
                    refused = sum(client.streams[s].reset is not None for s in streams)
                    return len(forwarded(proxy, f"/held/{round_}-")) + refused == 5 or client.closed.is_set()

                await until(begun, "the streams forwarded")
                if client.closed.is_set():
                    break
                for stream_id in streams:
                    client.conn.reset_stream(stream_id)
                client.write_raw(client.conn.data_to_send())
            await ended(client)
            elapsed = loop.time() - started
            assert client.goaway is not None and client.goaway.error_code == Codes.ENHANCE_YOUR_CALM
        reached = len(forwarded(proxy, "/held/"))
        # the budget: twice the stream limit at once, and what time gives back while the attack lasts
        assert running_limit(5) <= reached <= running_limit(5) + 5 + elapsed * RESETS_REGAINED_PER_SECOND
        await until(lambda: not h2_connections(proxy), "the connection to be gone")
        await still_serves(proxy)
    finally:
        upstream.release_held()
        await proxy.running.stop(grace=1)


async def test_a_client_that_cancels_now_and_then_is_never_cut(proxy: ProxyHandle) -> None:
    """360 resets on one connection, more than the burst the budget allows, amid 720 answered requests."""
    token = proxy.issuer.token()
    async with h2_client(proxy) as client:
        assert (await client.request("GET", "/api", token=token)).status == 200
        for round_ in range(12):
            for n in range(30):
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, request_fields(f"/cancelled/{round_}/{n}", token), end_stream=True)
                client.conn.reset_stream(stream_id)
            client.write_raw(client.conn.data_to_send())
            streams = [client.start("GET", f"/answered/{round_}/{n}", token=token) for n in range(60)]
            for stream_id in streams:
                assert (await client.response(stream_id)).status == 200
        assert client.goaway is None and not client.closed.is_set()
    assert len(forwarded(proxy, "/answered/")) == 720
    assert not [line for line in proxy.access.lines if "AuFail" in line]


# 2. CONTINUATION flood ------------------------------------------------------------------------------------


async def test_a_continuation_flood_is_cut_after_the_librarys_bound(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    async with h2_client(proxy) as client:
        head = HeadersFrame(1)  # no END_HEADERS: the block goes on in CONTINUATION frames
        head.data = Encoder().encode(request_fields("/continued", token))
        client.write_raw(head.serialize())
        frames = 0
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while not client.closed.is_set() and frames < 10_000:
                more = ContinuationFrame(1)
                more.data = b"\x40\x01a\x01b" * 3000  # literal fields, 15 KB a frame
                client.write_raw(more.serialize())
                frames += 1
                await client.writer.drain()
                await asyncio.sleep(0)
        await ended(client)
        assert frames < 1000  # cut after a bounded number (the library's: 64 frames, 1 MiB)
        if client.goaway is not None:
            assert client.goaway.error_code in (Codes.PROTOCOL_ERROR, Codes.ENHANCE_YOUR_CALM)
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert proxy.upstream.requests == []
    await still_serves(proxy)


# 3. header lists too large, HPACK bombs -------------------------------------------------------------------


async def test_a_header_list_over_256_kib_ends_the_connection_unforwarded(proxy: ProxyHandle) -> None:
    async with h2_client(proxy) as client:
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        padding = [(f"x-pad-{i}", "p" * 1500) for i in range(200)]  # 300 KiB
        stream_id = client.start("GET", "/too-large", token=proxy.issuer.token(), headers=padding)
        await ended(client)
        assert client.streams[stream_id].status == 0
        assert client.goaway is not None and client.goaway.error_code == Codes.ENHANCE_YOUR_CALM
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert forwarded(proxy, "/too-large") == []
    await still_serves(proxy)


async def test_an_hpack_bomb_is_refused_before_it_is_inflated(proxy: ProxyHandle) -> None:
    """A 4 KiB field indexed once, then referenced by one byte 10,000 times: 40 MB from 14 KB."""
    async with h2_client(proxy) as client:
        value = b"b" * 4000
        block = Encoder().encode(request_fields("/bomb", proxy.issuer.token()))
        block += b"\x40" + hpack_integer(6, 7, 0) + b"x-bomb" + hpack_integer(len(value), 7, 0) + value
        block += b"\xbe" * 10_000  # index 62: the newest entry of the dynamic table
        frame = HeadersFrame(1)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        frame.data = block
        client.write_raw(frame.serialize())
        await ended(client)
        assert client.goaway is not None and client.goaway.error_code == Codes.ENHANCE_YOUR_CALM
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert proxy.upstream.requests == []
    await still_serves(proxy)


async def test_a_large_first_request_before_the_settings_are_acknowledged_is_served(proxy: ProxyHandle) -> None:
    """A 200 KiB header list (a large token, many groups) in the client's first flight: the proxy's 256 KiB
    limit holds from the start, not the library's 64 KiB default until the client has acknowledged it."""
    async with h2_client(proxy) as client:
        assert not client.remote_settings  # nothing read from the proxy yet: its SETTINGS not acknowledged
        padding = [(f"x-pad-{i}", "p" * 1000) for i in range(200)]
        response = await client.request("GET", "/large-first", token=proxy.issuer.token(), headers=padding)
        assert response.status == 200
        assert client.remote_settings[SettingCodes.MAX_HEADER_LIST_SIZE] == DEFAULT_MAX_HEAD_BYTES
    (request,) = [r for r in proxy.upstream.requests if r.target == "/large-first"]
    assert request.one("x-pad-199") == "p" * 1000


# 4. header fields the HTTP/1.1 rules refuse, and those the library refuses -----------------------------------


async def test_more_than_256_header_fields_get_431_on_their_stream_only(proxy: ProxyHandle) -> None:
    async with h2_client(proxy) as client:
        fields = [(f"x-h-{i}", "v") for i in range(300)]
        response = await client.request("GET", "/many-fields", token=proxy.issuer.token(), headers=fields)
        assert response.status == 431
        assert response.json()["code"] == 431
        await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/many-fields")
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
    assert forwarded(proxy, "/many-fields") == []


@pytest.mark.parametrize(
    ("what", "field"),
    [("a name that is not a token", (b"a(b", b"1")), ("a control byte in a value", (b"x-a", b"a\x01b"))],
)
async def test_fields_go_would_refuse_get_400_and_the_connection_stays(
    proxy: ProxyHandle, what: str, field: tuple[bytes, bytes]
) -> None:
    async with h2_client(proxy) as client:
        stream_id = send_fields(client, [*request_fields("/odd-field", proxy.issuer.token()), field])
        state = await client.until(stream_id, lambda s: s.ended)
        assert state.status == 400, what
        assert status_of(state)["code"] == 400
        await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/odd-field")
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        assert client.goaway is None
    assert forwarded(proxy, "/odd-field") == []


@pytest.mark.parametrize(
    "field", [(b"X-Upper", b"1"), (b"connection", b"close"), (b"upgrade", b"websocket"), (b"te", b"gzip")]
)
async def test_fields_http2_forbids_end_the_connection_with_protocol_error(
    proxy: ProxyHandle, field: tuple[bytes, bytes]
) -> None:
    async with h2_client(proxy) as client:
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        send_fields(client, [*request_fields("/forbidden-field", proxy.issuer.token()), field])
        await ended(client)
        assert client.goaway is not None and client.goaway.error_code == Codes.PROTOCOL_ERROR
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert forwarded(proxy, "/forbidden-field") == []
    await still_serves(proxy)


# 5. a window never opened ---------------------------------------------------------------------------------


async def test_a_stream_whose_window_never_opens_holds_back_neither_its_neighbours_nor_memory(
    proxy: ProxyHandle,
) -> None:
    token = proxy.issuer.token()
    size = 20_000_000
    async with h2_client(proxy) as client:
        client.conn.increment_flow_control_window(64 * 1024 * 1024)  # the connection's window is wide open
        big = client.start("GET", f"/big/{size}", token=token)
        client.starved.add(big)
        await client.until(big, lambda s: len(s.body) >= 65_535)  # its whole initial window, then nothing
        (conn,) = h2_connections(proxy)
        side: H2Side = conn.sides[big]
        watch = client.start("GET", "/api/v1/pods?watch=true", token=token)
        await client.until(watch, lambda s: s.status == 200)
        proxy.upstream.emit({"type": "ADDED", "object": {"kind": "Pod"}})
        await client.until(watch, lambda s: b"ADDED" in s.body)
        for n in range(20):  # the proxy does plenty of other work meanwhile
            assert (await client.request("GET", f"/neighbour/{n}", token=token)).status == 200
            assert side.pending_bytes <= 1024 * 1024
            assert conn.transport.get_write_buffer_size() <= 1024 * 1024
        state = client.streams[big]
        assert len(state.body) == 65_535 and not state.ended
        assert side.pending_bytes > HIGH_WATER  # what kube-apiserver sent before it was paused
        # once the client reads, the rest comes
        client.starved.discard(big)
        client.conn.acknowledge_received_data(len(state.body), big)
        client.write_raw(client.conn.data_to_send())
        response = await client.response(big, timeout=60)
        assert len(response.body) == size
        proxy.upstream.end_watches()
        assert (await client.response(watch)).status == 200


async def test_a_zero_initial_window_waits_for_the_clients_settings(proxy: ProxyHandle) -> None:
    async with h2_client(proxy, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0}) as client:
        stream_id = client.start("GET", "/big/300000", token=proxy.issuer.token())
        await client.until(stream_id, lambda s: s.status == 200)
        (conn,) = h2_connections(proxy)
        await until(lambda: stream_id in conn.sides and conn.sides[stream_id].pending_bytes > 0, "bytes waiting")
        assert not client.streams[stream_id].body
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65_535})
        client.write_raw(client.conn.data_to_send())
        response = await client.response(stream_id)
        assert response.body == b"x" * 300_000


# 6. control frame floods from a client that does not read ---------------------------------------------------


@pytest.mark.parametrize("frame", ["PING", "SETTINGS"])
async def test_a_control_frame_flood_from_a_client_that_never_reads_is_cut(
    proxy: ProxyHandle, frame: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="kop.connection")
    monkeypatch.setattr(h2_limits, "MAX_QUEUED_CONTROL_FRAMES", 1000)  # Go's 10,000 is the unit tests'
    async with h2_client(proxy, receive_buffer=4096) as client:
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        client._reading.cancel()  # from now on nothing is read
        (conn,) = h2_connections(proxy)
        # the kernel's buffer for the proxy's side small, as on a busy host: the backlog is what is counted
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        one = PingFrame(0, opaque_data=b"12345678") if frame == "PING" else SettingsFrame(0)
        batch = one.serialize() * 1000
        sent = 0
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while h2_connections(proxy) and sent < 300_000:
                client.write_raw(batch)
                sent += 1000
                await asyncio.wait_for(client.writer.drain(), 20)
        await until(lambda: not h2_connections(proxy), "the connection to be cut")
        assert sent < 300_000
    await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
    assert "it does not read our answers" in caplog.text
    await still_serves(proxy)


async def test_streams_refused_at_once_to_a_client_that_never_reads_are_a_bounded_backlog(
    proxy: ProxyHandle, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stream with a bad target gets its 400 at once, whether or not the client reads: a client that
    never does would have them queue without end."""
    caplog.set_level(logging.WARNING, logger="kop.connection")
    monkeypatch.setattr(h2_limits, "MAX_QUEUED_CONTROL_FRAMES", 1000)  # Go's 10,000 is the unit tests'
    wide_open = {SettingCodes.INITIAL_WINDOW_SIZE: 2**30}  # no window holds the answers back: only the backlog
    async with h2_client(proxy, receive_buffer=4096, settings=wide_open) as client:
        client.conn.increment_flow_control_window(2**30)
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        client._reading.cancel()  # from now on nothing is read
        (conn,) = h2_connections(proxy)
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peak = 0
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while h2_connections(proxy) and peak < 1024 * 1024:
                for _ in range(50):  # fewer than the stream limit at a time: each is closed once answered
                    stream_id = client.conn.get_next_available_stream_id()
                    client.conn.send_headers(stream_id, request_fields("/refused/%zz"), end_stream=True)
                    del client.conn.streams[stream_id]  # it never reads the answer: as if it had forgotten it
                client.write_raw(client.conn.data_to_send())
                await asyncio.wait_for(client.writer.drain(), 20)
                peak = max(peak, conn.transport.get_write_buffer_size())
        await until(lambda: not h2_connections(proxy), "the connection to be cut")
        assert peak < 1024 * 1024
    assert "it does not read our answers" in caplog.text
    assert forwarded(proxy, "/refused/") == []
    await still_serves(proxy)


async def test_frames_the_library_answers_on_its_own_stop_being_read_past_a_bound(proxy: ProxyHandle) -> None:
    """DATA on a closed stream is answered with a RST_STREAM by the library itself, with no event to count:
    a client that sends them and never reads stops being read once a megabyte waits for it."""
    async with h2_client(proxy, receive_buffer=4096) as client:
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200  # stream 1 closed
        client._reading.cancel()  # from now on nothing is read
        (conn,) = h2_connections(proxy)
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        on_closed_stream = DataFrame(1, data=b"x").serialize() * 10_000  # 10 bytes each, a 13-byte answer
        paused = asyncio.ensure_future(until(lambda: conn.reading_paused, "the proxy to stop reading"))
        for _ in range(400):  # 40 MB of answers at most: without a bound they would all queue
            client.write_raw(on_closed_stream)
            draining = asyncio.ensure_future(client.writer.drain())
            await asyncio.wait([draining, paused], return_when=asyncio.FIRST_COMPLETED)
            if paused.done():
                draining.cancel()  # it will not drain: the proxy reads no more
                break
        await paused
        assert conn.transport.get_write_buffer_size() < 2 * MAX_UNREAD_OUTPUT  # the bound and what one read brought
    await still_serves(proxy)


async def test_a_client_that_pings_a_lot_and_reads_the_answers_is_served(proxy: ProxyHandle) -> None:
    async with h2_client(proxy) as client:
        for n in range(25):
            for i in range(1000):
                client.conn.ping(b"%08d" % (n * 1000 + i))
            client.write_raw(client.conn.data_to_send())
            assert (await client.request("GET", f"/between-pings/{n}", token=proxy.issuer.token())).status == 200
        assert client.goaway is None and not client.closed.is_set()


# 7. streams and connections that go quiet -----------------------------------------------------------------


async def test_a_request_body_that_never_ends_is_reset_after_the_idle_timeout(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requestbody, "IDLE_TIMEOUT_SECONDS", 0.5)
    async with h2_client(proxy) as client:
        stream_id = client.start("POST", "/echo-body", token=proxy.issuer.token(), body=b"part of it", end=False)
        state = await client.until(stream_id, lambda s: s.reset is not None or s.ended, timeout=20)
        assert state.reset is not None and not state.ended
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
        assert client.goaway is None
    assert forwarded(proxy, "/echo-body") == []


async def test_an_idle_connection_is_closed_even_if_it_pings(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timers, "IDLE_TIMEOUT_SECONDS", 0.3)
    async with h2_client(proxy) as silent, h2_client(proxy) as pinging:
        pings = 0
        while not pinging.closed.is_set() and pings < 400:  # guard: 20 s of pings
            pinging.conn.ping(b"%08d" % pings)
            pinging.write_raw(pinging.conn.data_to_send())
            pings += 1
            await asyncio.sleep(0.05)
        assert pinging.goaway is not None and pinging.goaway.error_code == Codes.NO_ERROR
        assert pings >= 5  # it pinged through the whole timeout
        await ended(silent)
        assert silent.goaway is not None and silent.goaway.error_code == Codes.NO_ERROR
    await still_serves(proxy)


async def test_a_connection_with_a_quiet_watch_is_not_idle(proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timers, "IDLE_TIMEOUT_SECONDS", 0.2)
    async with h2_client(proxy) as client:
        watch = client.start("GET", "/api/v1/pods?watch=true", token=proxy.issuer.token())
        await client.until(watch, lambda s: s.status == 200)
        for pings in range(10):  # five idle timeouts go by
            client.conn.ping(b"%08d" % pings)
            client.write_raw(client.conn.data_to_send())
            await asyncio.sleep(0.1)
        proxy.upstream.emit({"type": "MODIFIED", "object": {"kind": "Pod"}})
        await client.until(watch, lambda s: b"MODIFIED" in s.body)
        assert client.goaway is None
        proxy.upstream.end_watches()
        assert (await client.response(watch)).status == 200
        await ended(client)  # idle now that the watch is over
        assert client.goaway is not None and client.goaway.error_code == Codes.NO_ERROR


# 8. requests HTTP/2 cannot carry, and targets Go refuses --------------------------------------------------


@pytest.mark.parametrize("subresource", ["exec?command=ls", "attach?stdin=true", "portforward?ports=80"])
async def test_upgrades_over_h2_get_a_status_that_says_to_use_http1(proxy: ProxyHandle, subresource: str) -> None:
    path = f"/api/v1/namespaces/default/pods/x/{subresource}"
    async with h2_client(proxy) as client:
        for method in ("GET", "POST"):
            response = await client.request(method, path, token=proxy.issuer.token())
            assert response.status == 400
            assert "HTTP/1.1" in response.json()["message"]
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
    await proxy.access.wait_for(f"AuFail src:[127.0.0.1 / ] URI:{path}")
    assert forwarded(proxy, "/api/v1/namespaces/default/pods/x/") == []


async def test_connect_gets_405_and_a_bad_escape_400(proxy: ProxyHandle) -> None:
    async with h2_client(proxy) as client:
        connect = send_fields(client, [(b":method", b"CONNECT"), (b":authority", b"kube.example:443")])
        state = await client.until(connect, lambda s: s.ended)
        assert state.status == 405 and status_of(state)["code"] == 405
        escaped = await client.request("GET", "/api/v1/%zz", token=proxy.issuer.token())
        assert escaped.status == 400 and escaped.json()["code"] == 400
        await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/api/v1/%zz")
        assert (await client.request("GET", "/api", token=proxy.issuer.token())).status == 200
    assert [r.target for r in proxy.upstream.requests] == ["/api"]


# 9. more streams than advertised ------------------------------------------------------------------------


async def test_more_streams_than_the_limit_is_refused_and_the_proxy_serves_on(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    """A client that opens more streams than advertised in its first flight, before it has read the limit."""
    proxy = await proxy_with(config, issuer, upstream, http2_max_streams=3)
    try:
        token = issuer.token()
        async with h2_client(proxy) as client:
            streams = [client.start("GET", f"/held/{n}", token=token) for n in range(4)]
            await client.until(streams[3], lambda s: s.reset is not None or s.ended)
            assert client.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3
            if client.goaway is not None:  # the h2 library's answer: the whole connection ends
                assert client.goaway.error_code == Codes.PROTOCOL_ERROR
                await ended(client)
                assert forwarded(proxy, "/held/") == []
                await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:-")
            else:  # RFC 9113 §5.1.2's: that stream alone is refused, the others run
                assert client.streams[streams[3]].reset == Codes.REFUSED_STREAM
                await until(lambda: len(forwarded(proxy, "/held/")) == 3, "three forwarded")
                upstream.release_held()
                for stream_id in streams[:3]:
                    assert (await client.response(stream_id)).status == 200
        assert forwarded(proxy, "/held/3") == []
        upstream.release_held()
        await still_serves(proxy)
    finally:
        upstream.release_held()
        await proxy.running.stop(grace=1)


# 10. --disable-http2-serving ------------------------------------------------------------------------------


async def test_with_http2_serving_disabled_no_client_gets_h2(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    proxy = await proxy_with(config, issuer, upstream, http2=False)
    try:
        for offered in (["h2"], ["h2", "http/1.1"]):
            _reader, writer = await asyncio.open_connection(
                "127.0.0.1", proxy.port, ssl=h2_ssl(proxy.ca_file, offered), server_hostname="localhost"
            )
            chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
            writer.close()
            assert chosen in (None, "http/1.1"), offered
            assert chosen != "h2"
        with pytest.raises(AssertionError, match="did not negotiate h2"):
            await H2Client.connect(proxy.port, proxy.ca_file)
        response = await get(proxy.port, proxy.ca_file, "/api", token=issuer.token())
        assert response.status == 200
        assert upstream.requests[-1].target == "/api"
    finally:
        await proxy.running.stop(grace=1)


# 11. graceful shutdown ------------------------------------------------------------------------------------


async def test_shutdown_sends_goaway_ends_watches_at_an_event_and_refuses_new_streams(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    async with h2_client(proxy) as client:
        watch = client.start("GET", "/api/v1/pods?watch=true", token=token)
        await client.until(watch, lambda s: s.status == 200)
        proxy.upstream.emit({"type": "ADDED", "object": {"kind": "Pod", "n": 1}})
        await client.until(watch, lambda s: b"ADDED" in s.body)
        held = client.start("GET", "/held/1", token=token)  # a request still running when the stop comes
        await until(lambda: forwarded(proxy, "/held/1"), "the held request forwarded")
        stopping = asyncio.ensure_future(proxy.running.stop(grace=10))
        # the watch ends whole, at the event boundary it was at, as if kube-apiserver had ended it
        response = await client.response(watch)
        assert response.status == 200
        assert [json.loads(line)["type"] for line in response.body.splitlines()] == ["ADDED"]
        assert client.goaway is not None and client.goaway.error_code == Codes.NO_ERROR
        assert client.goaway.last_stream_id == held
        # a stream opened after the GOAWAY is refused (the client may retry it elsewhere), never forwarded
        late = send_fields(client, request_fields("/after-goaway", token))
        state = await client.until(late, lambda s: s.reset is not None or s.ended)
        assert state.reset == Codes.REFUSED_STREAM
        # the running request completes; then the connection closes and the stop is done
        proxy.upstream.release_held()
        assert (await client.response(held)).status == 200
        await asyncio.wait_for(stopping, 20)
        await ended(client)
    assert forwarded(proxy, "/after-goaway") == []


# 12. over --max-client-connections ------------------------------------------------------------------------


async def test_an_h2_connection_over_the_cap_gets_503_with_retry_after(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    proxy = await proxy_with(config, issuer, upstream, max_client_connections=1)
    try:
        held = await Client.connect(proxy.port, proxy.ca_file)
        try:
            await until(lambda: len(proxy.app.proxy.connections) == 1, "the first connection")
            async with h2_client(proxy) as over:
                stream_id = over.start("GET", "/over-the-cap", token=issuer.token())
                state = await over.until(stream_id, lambda s: s.ended)
                assert state.status == 503
                assert ("retry-after", "1") in state.headers
                assert status_of(state)["reason"] == "ServiceUnavailable"
                await ended(over)
                assert over.goaway is not None and over.goaway.error_code == Codes.NO_ERROR
            await proxy.access.wait_for("AuFail src:[127.0.0.1 / ] URI:/over-the-cap")
            assert (await held.request("GET", "/api", token=issuer.token())).status == 200
        finally:
            await held.close()
        assert forwarded(proxy, "/over-the-cap") == []
    finally:
        await proxy.running.stop(grace=1)


# request bodies left unread ----------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["the client resets it", "the proxy answers before reading it"])
async def test_bodies_left_unread_give_the_connection_window_back(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """Streams whose body the proxy had stopped reading (its buffer full while the gate decided), ended
    before it was read: the window it held back is the connection's too. Twenty of them, each holding up to
    64 KiB, are more than the 1 MiB connection window: if it were lost, the next upload would never start."""
    gate = proxy.app.proxy.gate
    decide = gate.decide
    open_gate = asyncio.Event()

    async def held_decide(head: RequestHead, origin: object) -> object:
        if head.target.startswith(b"/unread/"):
            await open_gate.wait()
        return await decide(head, origin)  # type: ignore[arg-type]

    monkeypatch.setattr(gate, "decide", held_decide)
    token = proxy.issuer.token() if ending == "the client resets it" else "not-a-token"
    big = b"u" * 1024 * 1024

    async def leave_unread(client: H2Client, side: H2Side) -> None:
        await until(lambda: side._unacknowledged > 0, "the body paused with its window held back")
        if ending == "the client resets it":
            client.reset(side.stream_id)
            await until(lambda: side.reset, "the stream reset")
        else:
            open_gate.set()
            state = await client.until(side.stream_id, lambda s: s.ended or s.reset is not None)
            assert state.status == 401
            open_gate.clear()

    async with h2_client(proxy) as client:
        await until(lambda: h2_connections(proxy), "the connection")
        (conn,) = h2_connections(proxy)
        for n in range(20):
            await leave_unread(client, await side_of(conn, client.start("POST", f"/unread/{n}", token=token, body=big)))
        body = b"b" * 300_000  # the reset streams' exchanges still wait for the gate meanwhile
        response = await client.request("POST", "/echo-body", token=proxy.issuer.token(), body=body)
        assert response.status == 200 and response.body == body
        open_gate.set()
    assert forwarded(proxy, "/unread/") == []
