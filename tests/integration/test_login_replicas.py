"""Browser login across processes: a pending login travels sealed in the browser's cookie, so the callback
may reach another replica or another ``--workers`` process than ``/login`` did. Proxies serving the same
certificate and key finish each other's logins; one with another serving key, or one whose key was rotated
meanwhile, refuses with the "not valid, sign in again" page."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from kube_oidc_proxy.config import Config
from tests.conftest import ProxyHandle, replace, start_proxy
from tests.integration.test_login import with_login
from tests.support.browser import Browser
from tests.support.certs import CertFiles, issue
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.process import start_process
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

NOT_VALID = "<h1>This sign-in link is not valid</h1>"
SIGNED_IN = "<h1>Signed in as alice</h1>"


def serving(config: Config, certs: CertFiles) -> Config:
    return replace(config, serving=replace(config.serving, tls_cert_file=certs.cert, tls_private_key_file=certs.key))


async def stop(handle: ProxyHandle) -> None:
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


@pytest.fixture
async def replicas(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[list[ProxyHandle]]:
    """Two proxies loaded from the same files, as two replicas behind a Service (or two workers) are."""
    handles = [await start_proxy(with_login(config), issuer, upstream) for _ in range(2)]
    yield handles
    for handle in handles:
        await stop(handle)
    assert upstream.requests == []


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
async def test_a_login_started_at_one_replica_finishes_at_the_other(replicas: list[ProxyHandle], protocol: str) -> None:
    one, other = replicas
    for first, second in ((one, other), (other, one)):
        started = Browser(first.port, first.ca_file, first.issuer, protocol=protocol)
        _, callback = await started.start()
        finished = Browser(second.port, second.ca_file, second.issuer, protocol=protocol, cookies=dict(started.cookies))
        page = await finished.get(callback)
        assert page.status == 200, page.body
        assert SIGNED_IN in page.body.decode()
        assert finished.cookies == {}, "cleared by the replica that took the callback"
        await started.close()
        await finished.close()


async def test_a_replay_at_another_replica_with_a_kept_cookie_is_refused_by_the_idp(
    replicas: list[ProxyHandle],
) -> None:
    """Each replica knows only its own spent states; the code is one use at the IdP, so a replay elsewhere,
    even with the cookie copied before it was cleared, gets no token."""
    one, other = replicas
    browser = Browser(one.port, one.ca_file, one.issuer)
    _, callback = await browser.start()
    kept = dict(browser.cookies)
    assert (await browser.get(callback)).status == 200
    assert (await browser.get(callback)).status == 400, "without the cookie"
    replay = await Browser(other.port, other.ca_file, other.issuer, cookies=kept).get(callback)
    assert replay.status == 502 and "invalid_grant (code not valid)" in replay.body.decode()
    assert SIGNED_IN not in replay.body.decode()
    replay = await Browser(one.port, one.ca_file, one.issuer, cookies=kept).get(callback)
    assert replay.status == 400 and NOT_VALID in replay.body.decode(), "spent at the replica that took it"


async def test_a_replica_with_another_serving_key_refuses_the_login_with_the_not_valid_page(
    replicas: list[ProxyHandle],
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    ca: trustme.CA,
    tmp_path: Path,
) -> None:
    one = replicas[0]
    stranger = await start_proxy(with_login(serving(config, issue(ca, tmp_path, "other-key"))), issuer, upstream)
    try:
        browser = Browser(one.port, one.ca_file, issuer)
        _, callback = await browser.start()
        refused = await Browser(stranger.port, stranger.ca_file, issuer, cookies=dict(browser.cookies)).get(callback)
        assert refused.status == 400 and NOT_VALID in refused.body.decode()
        assert "Sign in again from the start." in refused.body.decode()
        line = await stranger.access.wait_for("AuFail")
        assert line.endswith("URI:/login/callback")
        assert issuer.token_endpoint.requests == [], "the code was not exchanged"
        # the login itself is still good where it was sealed
        assert (await browser.get(callback)).status == 200
    finally:
        await stop(stranger)


async def test_a_rotated_serving_key_refuses_logins_begun_before_it_once(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, ca: trustme.CA, tmp_path: Path
) -> None:
    mounted = issue(ca, tmp_path, "mounted")
    handle = await start_proxy(with_login(serving(config, mounted)), issuer, upstream)
    try:
        browser = Browser(handle.port, handle.ca_file, issuer)
        _, callback = await browser.start()
        renewed = issue(ca, tmp_path, "renewed")
        for new, old in ((renewed.cert, mounted.cert), (renewed.key, mounted.key)):
            shutil.copyfile(new, f"{old}.tmp")
            Path(f"{old}.tmp").replace(old)
        assert handle.app.tls.reload_if_changed()
        page = await browser.get(callback)
        assert page.status == 400 and NOT_VALID in page.body.decode()
        assert (await browser.sign_in()).status == 200, "a login begun after the rotation works"
    finally:
        await stop(handle)


def listeners(port: int) -> int:
    """Sockets listening on ``port`` (each worker opens its own, SO_REUSEPORT)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


async def test_workers_forked_from_one_parent_finish_each_others_logins(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> None:
    """Every request below is a new connection, which the kernel gives to either worker (SO_REUSEPORT): with
    logins kept in a worker's memory, about half of the callbacks would reach the other one and fail."""
    process = start_process(str(tmp_path), issuer, upstream, server_certs, "--workers=2", "--login-client-id=kube")
    try:
        await asyncio.to_thread(process.wait_ready)  # one worker is
        await until(lambda: listeners(process.port) == 2, "both workers listening")
        ready = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while ready < 20:  # both workers have the issuer's discovery and keys (a 503 until then)
            assert loop.time() < deadline, process.stderr()
            response = await get(process.port, process.ca_file, "/api", token=issuer.token())
            ready = ready + 1 if response.status == 200 else 0
        browser = Browser(process.port, process.ca_file, issuer)
        for _ in range(12):
            page = await browser.sign_in()
            assert page.status == 200, page.body
            assert SIGNED_IN in page.body.decode()
        assert browser.cookies == {}
        await until(lambda: process.stderr().count("browser login: alice signed in") == 12, "12 sign-ins logged")
        assert "refused" not in process.stderr()
    finally:
        process.kill()
    assert not [r for r in upstream.requests if r.target.startswith("/login")]
