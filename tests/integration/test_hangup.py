"""SIGHUP is a reload, never an exit: the real command keeps serving, re-reads its serving certificates and
--authentication-config at once, says so in one line, and still stops cleanly (exit 0) on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from kube_oidc_proxy.config import OIDCConfig
from kube_oidc_proxy.server import lifecycle
from tests.conftest import make_config, replace, start_proxy
from tests.integration.test_authentication_config import corporate, document, write
from tests.support.certs import CertFiles, issue
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.process import ProxyProcess, running_process
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

HANGUP_LINE = "SIGHUP: re-read the files: "


def _served_serial(port: int, ca_file: str) -> int:
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def live_certs(tmp_path: Path, server_certs: CertFiles) -> CertFiles:
    """A certificate pair at paths of its own, to rotate."""
    live = CertFiles(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), server_certs.ca)
    shutil.copy(server_certs.cert, live.cert)
    shutil.copy(server_certs.key, live.key)
    return live


@pytest.fixture
def process(
    tmp_path: Path,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    live_certs: CertFiles,
    request: pytest.FixtureRequest,
) -> Iterator[ProxyProcess]:
    extra: tuple[str, ...] = getattr(request, "param", ())
    with running_process(str(tmp_path), issuer, upstream, live_certs, "--shutdown-grace-period=2s", *extra) as proc:
        yield proc


async def test_sighup_reloads_rotated_certificates_keeps_serving_and_sigterm_still_exits_0(
    process: ProxyProcess, issuer: TestIssuer, live_certs: CertFiles, ca: trustme.CA, tmp_path: Path
) -> None:
    before = await asyncio.to_thread(_served_serial, process.port, process.ca_file)
    fresh = issue(ca, tmp_path, "rotated")
    shutil.copy(fresh.key, live_certs.key)
    shutil.copy(fresh.cert, live_certs.cert)
    process.terminate(signal.SIGHUP)
    await until(lambda: HANGUP_LINE in process.stderr(), "the SIGHUP line")
    assert process.proc.poll() is None
    assert await asyncio.to_thread(_served_serial, process.port, process.ca_file) != before
    assert (await get(process.port, process.ca_file, "/api", token=issuer.token())).status == 200
    lines = [ln for ln in process.stderr().splitlines() if HANGUP_LINE in ln]
    assert len(lines) == 1, lines
    assert await asyncio.to_thread(process.stop) == 0


@pytest.mark.parametrize("process", [("--workers=2",)], indirect=True)
async def test_with_workers_the_supervisor_passes_sighup_on_and_each_worker_reloads(
    process: ProxyProcess, issuer: TestIssuer
) -> None:
    await until(lambda: process.stderr().count("serving on") == 2, "both workers serving")
    process.terminate(signal.SIGHUP)
    await until(lambda: process.stderr().count(HANGUP_LINE) == 2, "a SIGHUP line from each of the two workers")
    responses = await asyncio.gather(
        *(get(process.port, process.ca_file, f"/api/{i}", token=issuer.token()) for i in range(10))
    )
    assert {r.status for r in responses} == {200}
    children = Path(f"/proc/{process.proc.pid}/task/{process.proc.pid}/children").read_text().split()
    assert len(children) == 2  # the same workers: none exited and was replaced
    assert "starting a new one" not in process.stderr()
    assert await asyncio.to_thread(process.stop) == 0


async def test_a_reload_reads_both_files_at_once_not_at_the_next_poll(
    tmp_path: Path,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    live_certs: CertFiles,
    ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(lifecycle, "TLS_RELOAD_POLL_SECONDS", 3600.0)  # only the reload can do it
    caplog.set_level(logging.INFO, logger="kop")
    auth_config = tmp_path / "authentication-config.yaml"
    write(auth_config, document(corporate(issuer)))
    config = replace(make_config(issuer, upstream, live_certs), oidc=OIDCConfig(authentication_config=str(auth_config)))
    handle = await start_proxy(config, issuer, upstream)
    try:
        before = await asyncio.to_thread(_served_serial, handle.port, handle.ca_file)
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        fresh = issue(ca, tmp_path, "rotated")
        shutil.copy(fresh.key, live_certs.key)
        shutil.copy(fresh.cert, live_certs.cert)
        elsewhere = corporate(issuer)
        elsewhere["issuer"]["audiences"] = ["someone-else"]  # tokens for "kube" are refused from now on
        write(auth_config, document(elsewhere))

        handle.running.reload()
        await until(lambda: HANGUP_LINE in caplog.text, "the reload's line")

        hangup = [r.getMessage() for r in caplog.records if HANGUP_LINE in r.getMessage()]
        assert hangup == [HANGUP_LINE + "serving certificates reloaded, --authentication-config reloaded"]
        assert await asyncio.to_thread(_served_serial, handle.port, handle.ca_file) != before
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 401

        handle.running.reload()  # nothing changed since
        await until(lambda: caplog.text.count(HANGUP_LINE) == 2, "the second reload's line")
        assert (
            caplog.records[-1].getMessage() == HANGUP_LINE + "serving certificates kept, --authentication-config kept"
        )
    finally:
        await handle.running.stop(grace=1)


def test_the_line_names_only_the_files_in_use() -> None:
    assert lifecycle.hangup_line(True, None) == HANGUP_LINE + "serving certificates reloaded"
    assert (
        lifecycle.hangup_line(False, False) == HANGUP_LINE + "serving certificates kept, --authentication-config kept"
    )
