"""--shutdown-delay-duration, on the real command: after SIGTERM /ready answers 503 at once while new
connections are still accepted and served; only when the delay is over does the listener close and the
drain (--shutdown-grace-period) begin. A second signal still exits at once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest

from tests.support.certs import CertFiles
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.process import ProxyProcess, running_process
from tests.support.upstream import RecordingUpstream

DELAY_SECONDS = 3.0
DEADLINE_SECONDS = 20.0  # a guard for polling, never a wait


def _ready(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


async def _until_not_ready(process: ProxyProcess) -> dict[str, object]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(_ready, process.probe_port)
        if status == 503:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("/ready still 200 after SIGTERM")


async def _until_refused(process: ProxyProcess, issuer: TestIssuer) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            response = await get(process.port, process.ca_file, "/api", token=issuer.token())
        except (OSError, h11.RemoteProtocolError):
            return  # refused, or closed unanswered: accepted by the kernel just as the listener closed
        assert response.status == 200  # until the listener closes, every new connection is served
        await asyncio.sleep(0.05)
    raise AssertionError("the listener was still open long after the delay")


@pytest.fixture
def process(
    tmp_path: Path,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    server_certs: CertFiles,
    request: pytest.FixtureRequest,
) -> Iterator[ProxyProcess]:
    extra: tuple[str, ...] = getattr(request, "param", (f"--shutdown-delay-duration={DELAY_SECONDS}s",))
    with running_process(str(tmp_path), issuer, upstream, server_certs, "--shutdown-grace-period=2s", *extra) as proc:
        yield proc


async def test_during_the_delay_ready_is_503_and_everything_is_still_served(
    process: ProxyProcess, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    kept = await Client.connect(process.port, process.ca_file)
    watch = await Client.connect(process.port, process.ca_file)
    try:
        assert (await kept.request("GET", "/api", token=issuer.token())).status == 200
        await watch.send_raw(
            f"GET /watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {issuer.token()}\r\n\r\n".encode()
        )
        await asyncio.wait_for(watch.reader.readuntil(b"\r\n\r\n"), 10)
        signalled = time.monotonic()
        process.terminate()
        body = await _until_not_ready(process)
        assert "--shutdown-delay-duration" in str(body["checks"])
        # Still inside the delay: a new connection, a kept-alive one and the open watch are all served.
        assert (await get(process.port, process.ca_file, "/api", token=issuer.token())).status == 200
        assert (await kept.request("GET", "/api", token=issuer.token())).status == 200
        upstream.emit({"type": "ADDED"})
        assert b"ADDED" in await asyncio.wait_for(watch.reader.readuntil(b"\n\r\n"), 5)
        with urllib.request.urlopen(f"http://127.0.0.1:{process.probe_port}/healthz", timeout=5) as live:
            assert live.status == 200  # alive: the kubelet must not restart it
        assert time.monotonic() - signalled < DELAY_SECONDS  # all of the above happened inside the delay

        await _until_refused(process, issuer)
        assert time.monotonic() - signalled >= DELAY_SECONDS - 0.1  # the listener stayed open the whole delay
        rest = await asyncio.wait_for(watch.read_until_closed(), 10)
        assert rest.endswith(b"0\r\n\r\n"), rest  # then the watch ends cleanly, at an event boundary
    finally:
        await kept.close()
        await watch.close()
    assert await asyncio.to_thread(process.proc.wait, 15) == 0


async def test_a_second_signal_during_the_delay_exits_at_once(tmp_path: Path, process: ProxyProcess) -> None:
    process.terminate()
    await _until_not_ready(process)
    signalled = time.monotonic()
    process.terminate(signal.SIGINT)
    assert await asyncio.to_thread(process.proc.wait, 15) == 1
    assert time.monotonic() - signalled < DELAY_SECONDS
    assert "second signal" in process.stderr()


@pytest.mark.parametrize("process", [("--shutdown-delay-duration=0s",)], indirect=True)
async def test_without_a_delay_the_listener_closes_at_once(process: ProxyProcess, issuer: TestIssuer) -> None:
    signalled = time.monotonic()
    process.terminate()
    await _until_refused(process, issuer)
    assert time.monotonic() - signalled < DELAY_SECONDS
    assert await asyncio.to_thread(process.proc.wait, 15) == 0


@pytest.mark.parametrize("process", [(f"--shutdown-delay-duration={DELAY_SECONDS}s", "--workers=2")], indirect=True)
async def test_every_worker_delays_its_stop(process: ProxyProcess, issuer: TestIssuer) -> None:
    signalled = time.monotonic()
    process.terminate()  # the supervisor passes it on to both workers
    await _until_not_ready(process)
    # Connections are spread over both workers (SO_REUSEPORT): each of them says 503 and still serves.
    probes = [await asyncio.to_thread(_ready, process.probe_port) for _ in range(16)]
    assert {status for status, _ in probes} == {503}
    responses = await asyncio.gather(
        *(get(process.port, process.ca_file, f"/api/{i}", token=issuer.token()) for i in range(24))
    )
    assert {r.status for r in responses} == {200}
    assert time.monotonic() - signalled < DELAY_SECONDS
    await _until_refused(process, issuer)
    assert time.monotonic() - signalled >= DELAY_SECONDS - 0.1
    assert await asyncio.to_thread(process.proc.wait, 15) == 0
