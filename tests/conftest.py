"""Shared fixtures: test certificates, the in-process issuer, the recording upstream, a running proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from kube_oidc_proxy.config import ClientConfig, Config, OIDCConfig, ProxyConfig, ServingConfig
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.server.lifecycle import Running, start
from kube_oidc_proxy.server.wiring import App, load
from tests.support.certs import CertFiles, issue
from tests.support.issuer import TestIssuer
from tests.support.ports import PortHolder
from tests.support.upstream import RecordingUpstream

PROXY_SA_TOKEN = "proxy-service-account-token"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="session")
def server_certs(ca: trustme.CA, cert_dir: Path) -> CertFiles:
    return issue(ca, cert_dir, "server")


@pytest.fixture
def ports() -> Iterator[PortHolder]:
    """Port numbers for listeners of other processes (or addresses where nothing listens), held until the
    test ends so that no other listener gets the same number."""
    with PortHolder() as holder:
        yield holder


@pytest.fixture
def issuer(server_certs: CertFiles) -> Iterator[TestIssuer]:
    iss = TestIssuer(server_certs)
    yield iss
    iss.close()


@pytest.fixture
def upstream(server_certs: CertFiles) -> Iterator[RecordingUpstream]:
    up = RecordingUpstream(server_certs)
    yield up
    up.close()


class CapturedLog:
    """Collects access-log lines (what the SIEM would read)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines += [line for line in text.split("\n") if line]
        return len(text)

    def flush(self) -> None:
        pass

    async def wait_for(self, needle: str, timeout: float = 5) -> str:
        for _ in range(int(timeout / 0.01)):
            for line in self.lines:
                if needle in line:
                    return line
            await asyncio.sleep(0.01)
        raise AssertionError(f"no access line with {needle!r} in {self.lines}")


def make_config(issuer: TestIssuer, upstream: RecordingUpstream, certs: CertFiles, **oidc: Any) -> Config:
    return Config(
        oidc=OIDCConfig(
            issuer_url=issuer.url,
            client_id="kube",
            ca_file=issuer.ca_file,
            groups_claim="groups",
            **oidc,
        ),
        serving=ServingConfig(
            bind_address="127.0.0.1",
            secure_port=0,
            tls_cert_file=certs.cert,
            tls_private_key_file=certs.key,
        ),
        proxy=ProxyConfig(readiness_probe_port=0, shutdown_grace=2.0),
        client=ClientConfig(server=upstream.url, certificate_authority=certs.ca, token=PROXY_SA_TOKEN, explicit=True),
    )


@dataclass
class ProxyHandle:
    running: Running
    app: App
    issuer: TestIssuer
    upstream: RecordingUpstream
    ca_file: str
    access: CapturedLog

    @property
    def port(self) -> int:
        return self.running.port


async def start_proxy(
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    *,
    wait_for_keys: bool = True,
    access_log: AccessLog | None = None,
) -> ProxyHandle:
    """``access_log``: written somewhere else than the returned ``access`` (whose lines then stay empty)."""
    captured = CapturedLog()
    app = load(config, access_log or AccessLog(captured, json=config.proxy.log_format == "json"))
    running = await start(app)
    for _ in range(500 if wait_for_keys else 0):
        if all(k.ready for k in app.key_sources):
            break
        await asyncio.sleep(0.01)
    return ProxyHandle(running, app, issuer, upstream, config.serving.tls_cert_file and issuer.ca_file, captured)


@pytest.fixture
def config(issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles) -> Config:
    return make_config(issuer, upstream, server_certs)


@pytest.fixture
async def proxy(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    handle = await start_proxy(config, issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


__all__ = ["PROXY_SA_TOKEN", "CapturedLog", "ProxyHandle", "make_config", "replace", "start_proxy"]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on uvloop, the loop the proxy runs on in production."""
    return {"uvloop": uvloop.new_event_loop}
