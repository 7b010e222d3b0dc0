"""The real command: graceful stop on SIGTERM, worker processes, certificate reload."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from kube_oidc_proxy.server import lifecycle
from tests.conftest import ProxyHandle, make_config, start_proxy
from tests.support.certs import CertFiles, issue
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.process import ProxyProcess, running_process
from tests.support.upstream import RecordingUpstream


@pytest.fixture
def process(
    tmp_path: Path,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    server_certs: CertFiles,
    request: pytest.FixtureRequest,
) -> Iterator[ProxyProcess]:
    extra: tuple[str, ...] = getattr(request, "param", ())
    with running_process(str(tmp_path), issuer, upstream, server_certs, "--shutdown-grace-period=2s", *extra) as proc:
        yield proc


async def test_sigterm_lets_in_flight_requests_finish_and_exits_zero(process: ProxyProcess, issuer: TestIssuer) -> None:
    slow = asyncio.ensure_future(get(process.port, process.ca_file, "/slow/1", token=issuer.token()))
    await asyncio.sleep(0.3)
    process.terminate()
    response = await slow
    assert response.status == 200 and response.json() == {"slow": True}
    assert await asyncio.to_thread(process.proc.wait, 15) == 0
    with pytest.raises(OSError):
        await get(process.port, process.ca_file, "/api", token=issuer.token())


async def test_sigterm_ends_a_watch_cleanly(
    process: ProxyProcess, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    client = await Client.connect(process.port, process.ca_file)
    try:
        await client.send_raw(
            f"GET /watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {issuer.token()}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Transfer-Encoding: chunked" in head
        upstream.emit({"type": "ADDED"})
        await asyncio.wait_for(client.reader.readuntil(b"\n\r\n"), 5)
        started = time.monotonic()
        process.terminate()
        rest = await asyncio.wait_for(client.read_until_closed(), 10)
        assert rest.endswith(b"0\r\n\r\n"), rest  # a complete chunked body: client-go simply re-watches
        assert time.monotonic() - started < 1.5  # not held for the grace period
    finally:
        await client.close()
    assert await asyncio.to_thread(process.proc.wait, 15) == 0


async def test_sigterm_cuts_exec_streams_after_the_grace_period_and_says_so(
    process: ProxyProcess, issuer: TestIssuer
) -> None:
    client = await Client.connect(process.port, process.ca_file)
    try:
        await client.send_raw(
            (
                "POST /api/v1/namespaces/ns/pods/web/exec HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {issuer.token()}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ")
        started = time.monotonic()
        process.terminate()
        await asyncio.sleep(0.5)
        client.writer.write(b"still-open")
        assert await asyncio.wait_for(client.reader.readexactly(10), 5) == b"still-open"
        await asyncio.wait_for(client.read_until_closed(), 10)
        assert 1.5 < time.monotonic() - started < 6
    finally:
        await client.close()
    assert await asyncio.to_thread(process.proc.wait, 15) == 0
    assert "closing a stream" in process.stderr() and "alice /api/v1/namespaces/ns/pods/web/exec" in process.stderr()


@pytest.mark.parametrize("process", [("--workers=2",)], indirect=True)
async def test_workers_share_the_port_and_stop_together(process: ProxyProcess, issuer: TestIssuer) -> None:
    token = issuer.token()
    responses = await asyncio.gather(*(get(process.port, process.ca_file, f"/api/{i}", token=token) for i in range(40)))
    assert {r.status for r in responses} == {200}
    children = Path(f"/proc/{process.proc.pid}/task/{process.proc.pid}/children").read_text().split()
    assert len(children) == 2
    assert await asyncio.to_thread(process.stop) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


async def test_access_lines_go_to_stdout(process: ProxyProcess, issuer: TestIssuer) -> None:
    assert (await get(process.port, process.ca_file, "/api/v1/nodes", token=issuer.token())).status == 200
    assert (await get(process.port, process.ca_file, "/api/v1/secrets", token="bad")).status == 401
    assert await asyncio.to_thread(process.stop) == 0
    lines = process.stdout().splitlines()
    assert any(
        " AuSuccess src:[127.0.0.1 / ] URI:/api/v1/nodes inbound:[alice / dev|ops|system:authenticated /]" in ln
        for ln in lines
    )
    assert any(ln.endswith(" AuFail src:[127.0.0.1 / ] URI:/api/v1/secrets") for ln in lines)


def _served_serial(port: int, ca_file: str) -> int:
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_serving_certificates_are_reloaded_without_dropping_connections(
    tmp_path: Path,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    server_certs: CertFiles,
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "TLS_RELOAD_POLL_SECONDS", 0.05)
    live = CertFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), server_certs.ca)
    shutil.copy(server_certs.cert, live.cert)
    shutil.copy(server_certs.key, live.key)
    handle: ProxyHandle = await start_proxy(make_config(issuer, upstream, live), issuer, upstream)
    try:
        before = await asyncio.to_thread(_served_serial, handle.port, handle.ca_file)
        kept = await Client.connect(handle.port, handle.ca_file)
        assert (await kept.request("GET", "/api", token=issuer.token())).status == 200
        fresh = issue(ca, tmp_path, "rotated")
        shutil.copy(fresh.key, live.key)
        shutil.copy(fresh.cert, live.cert)
        for _ in range(100):
            if await asyncio.to_thread(_served_serial, handle.port, handle.ca_file) != before:
                break
            await asyncio.sleep(0.05)
        after = await asyncio.to_thread(_served_serial, handle.port, handle.ca_file)
        assert after != before
        assert (await kept.request("GET", "/api", token=issuer.token())).status == 200  # old connection lives on
        await kept.close()
    finally:
        await handle.running.stop(grace=1)
