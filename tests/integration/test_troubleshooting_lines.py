"""The lines docs/troubleshooting.md quotes are the lines the proxy, kubectl and /ready really give.

Each case makes the failure a section of the page describes, with the in-process proxy and the real kubectl,
and collects what a user sees: the diagnostic records (their messages: the header before them is the log
format's), kubectl's output, the readiness body, the JSON access line. Every line collected must be on the
page, once the addresses of this run are replaced by the page's example names and what changes from run
to run (times, durations, kubectl's klog headers) is masked on both sides. A wording changed in the code
without the page, or a line on the page the proxy does not write, fails here.

The lines kube-apiserver writes (its RBAC refusals, ``Upgrade request required``) and what a load balancer
does to kubectl are not made here: the page says they were measured with the e2e cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest
import trustme

from kube_oidc_proxy.config import Config
from tests.conftest import ProxyHandle, start_proxy
from tests.support.certs import issue
from tests.support.client import get
from tests.support.h2client import H2Client
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

PAGE: Final = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"

# What the page calls the addresses of this run
ISSUER: Final = "https://login.example.com/realms/kube"
KUBE_APISERVER: Final = "10.96.0.1:443"
PROXY: Final = "https://kube.example.com"
CLIENT: Final = "10.0.3.7"
UNTRUSTED_ISSUER: Final = "https://dex.example.com"

# kube-apiserver's answer when the proxy's ServiceAccount may not create SubjectAccessReviews (v1.37.2, the e2e
# cluster's build: the body as it came)
SAR_FORBIDDEN: Final = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"subjectaccessreviews.'
    b'authorization.k8s.io is forbidden: User \\"system:serviceaccount:kube-oidc-proxy:kube-oidc-proxy\\" cannot '
    b'create resource \\"subjectaccessreviews\\" in API group \\"authorization.k8s.io\\" at the cluster scope",'
    b'"reason":"Forbidden","details":{"group":"authorization.k8s.io","kind":"subjectaccessreviews"},"code":403}'
)

_MASKS: Final = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6}\s+\d+ "), "<klog>"),
    (re.compile(r"\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?s\b"), "<duration>"),
    (re.compile(r"_ssl\.c:\d+"), "_ssl.c:<line>"),
    (re.compile(r'"durationSeconds":[0-9.e-]+'), '"durationSeconds":<n>'),
    (re.compile(r'"auditID":"[^"]*"'), '"auditID":<id>'),
    # which request of kubectl's a line is about (/version, /api, the list) does not matter: the page shows one
    (re.compile(r"^rejected [A-Z]+ \S+: ", re.MULTILINE), "rejected <request>: "),
    (re.compile(r"^[A-Z]+ \S+ failed: ", re.MULTILINE), "<request> failed: "),
]


def masked(text: str) -> str:
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return text


class Seen:
    """What one case made a user see, with this run's addresses replaced by the page's names."""

    def __init__(self, names: dict[str, str]) -> None:
        # longest first: a URL before the address inside it
        self.names = sorted(names.items(), key=lambda item: -len(item[0]))
        self.lines: list[str] = []

    def add(self, text: str) -> None:
        for actual, documented in self.names:
            text = text.replace(actual, documented)
        self.lines += [line for line in text.splitlines() if line.strip()]

    def records(self, caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> None:
        for record in caplog.records:
            if record.name.startswith("kop") and record.levelno >= level:
                self.add(record.getMessage())
        caplog.clear()

    def assert_on_the_page(self) -> None:
        page = masked(PAGE.read_text())
        missing = [line for line in dict.fromkeys(self.lines) if masked(line) not in page]
        assert not missing, "lines the page does not quote:\n" + "\n".join(missing)


def names(issuer: TestIssuer, upstream: RecordingUpstream, handle: ProxyHandle | None = None) -> dict[str, str]:
    found = {issuer.url: ISSUER, upstream.url: f"https://{KUBE_APISERVER}", upstream.url[8:]: KUBE_APISERVER}
    if handle is not None:
        found[f"https://localhost:{handle.port}"] = PROXY
    found["127.0.0.1"] = CLIENT  # what is left of loopback: the caller's address
    return found


async def kubectl(handle: ProxyHandle, tmp_path: Path, token: str, *args: str, trust: bool = True) -> str:
    kubeconfig = tmp_path / "empty-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    command = [
        "kubectl",
        f"--kubeconfig={kubeconfig}",
        f"--server=https://localhost:{handle.port}",
        *([f"--certificate-authority={handle.ca_file}"] if trust else []),
        f"--token={token}",
        f"--cache-dir={tmp_path / 'cache'}",
        *args,
    ]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done
    return done.stdout + done.stderr


async def ready(handle: ProxyHandle) -> str:
    port = handle.running.probe_port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ready HTTP/1.1\r\nHost: probe\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return f"{head.split(b' ')[1].decode()} {body.decode()}"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="kop")
    return caplog


@pytest.fixture
async def stopped() -> AsyncIterator[list[ProxyHandle]]:
    handles: list[ProxyHandle] = []
    yield handles
    for handle in handles:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()


async def test_kubectl_without_the_proxys_ca(
    proxy: ProxyHandle, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    seen = Seen(names(proxy.issuer, proxy.upstream, proxy))
    seen.add(await kubectl(proxy, tmp_path, proxy.issuer.token(), "get", "pods", trust=False))
    assert [r for r in logs.records if r.name.startswith("kop") and r.levelno >= logging.INFO] == []
    assert "x509: certificate signed by unknown authority" in seen.lines[-1]
    seen.assert_on_the_page()


async def test_the_issuers_ca_is_not_trusted(
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
    stopped: list[ProxyHandle],
) -> None:
    handle = await start_proxy(
        replace(config, oidc=replace(config.oidc, ca_file="")), issuer, upstream, wait_for_keys=False
    )
    stopped.append(handle)
    seen = Seen(names(issuer, upstream, handle))
    await until(lambda: handle.app.key_sources[0].last_error, "the issuer's key fetch to fail")
    seen.records(logs, logging.WARNING)
    seen.add(await kubectl(handle, tmp_path, issuer.token(), "get", "pods"))
    seen.records(logs)
    seen.add(await ready(handle))
    assert any("CERTIFICATE_VERIFY_FAILED" in line for line in seen.lines)
    seen.assert_on_the_page()


async def test_kube_apiservers_ca_is_not_trusted(
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
    stopped: list[ProxyHandle],
) -> None:
    other = issue(trustme.CA(), tmp_path, "other")
    handle = await start_proxy(
        replace(config, client=replace(config.client, certificate_authority=other.ca)), issuer, upstream
    )
    stopped.append(handle)
    seen = Seen(names(issuer, upstream, handle))
    logs.clear()
    seen.add(await kubectl(handle, tmp_path, issuer.token(), "get", "pods"))
    seen.records(logs)
    seen.add(await ready(handle))
    seen.records(logs)
    assert any("CERTIFICATE_VERIFY_FAILED" in line for line in seen.lines)
    seen.assert_on_the_page()


def token_cases(issuer: TestIssuer) -> Iterable[tuple[str, str]]:
    issuer.add_key("RS256", "key-2", publish=False)
    now = time.time()
    yield "untrusted issuer", issuer.mint(issuer.claims(iss=UNTRUSTED_ISSUER))
    yield "audience", issuer.token(aud="argocd")
    yield "unknown key", issuer.mint(issuer.claims(), kid="key-2")
    yield "expired", issuer.token(exp=now - 95)
    yield "not yet valid", issuer.token(nbf=now + 300)


async def test_tokens_the_proxy_refuses(proxy: ProxyHandle, tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    seen = Seen(names(proxy.issuer, proxy.upstream, proxy))
    for _, token in token_cases(proxy.issuer):
        seen.add(await kubectl(proxy, tmp_path, token, "get", "pods"))
        seen.records(logs)
    expired = proxy.issuer.token(exp=time.time() - 95)
    seen.add(await kubectl(proxy, tmp_path, expired, "get", "--raw", "/api/v1/namespaces/default/pods"))
    seen.records(logs)
    assert any("the token's iss is" in line for line in seen.lines)
    seen.assert_on_the_page()


async def test_a_refusal_in_the_json_access_line(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, tmp_path: Path, stopped: list[ProxyHandle]
) -> None:
    handle = await start_proxy(replace(config, proxy=replace(config.proxy, log_format="json")), issuer, upstream)
    stopped.append(handle)
    seen = Seen(names(issuer, upstream, handle))
    await kubectl(handle, tmp_path, issuer.token(aud="argocd"), "get", "--raw", "/api/v1/namespaces/default/pods")
    line = await handle.access.wait_for('"uri":"/api/v1/namespaces/default/pods"')
    assert json.loads(line)["reason"].startswith("token audience does not include the client id")
    seen.add(line)
    seen.assert_on_the_page()


async def test_impersonation_the_proxy_refuses_or_cannot_check(
    proxy: ProxyHandle, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    seen = Seen(names(proxy.issuer, proxy.upstream, proxy))
    token = proxy.issuer.token(sub="alice@example.com")
    proxy.upstream.sar_failure, proxy.upstream.sar_failure_body = 403, SAR_FORBIDDEN
    as_bob = ("--as=bob@example.com",)
    seen.add(await kubectl(proxy, tmp_path, token, "get", "--raw", "/api/v1/namespaces/default/pods", *as_bob))
    seen.records(logs)
    proxy.upstream.sar_failure = 0
    as_carol = ("--as=carol@example.com",)
    seen.add(await kubectl(proxy, tmp_path, token, "get", "--raw", "/api/v1/namespaces/default/pods", *as_carol))
    seen.records(logs)
    assert any("cannot create resource" in line for line in seen.lines)
    seen.assert_on_the_page()


async def test_an_upgrade_over_http2(proxy: ProxyHandle, logs: pytest.LogCaptureFixture) -> None:
    seen = Seen(names(proxy.issuer, proxy.upstream, proxy))
    client = await H2Client.connect(proxy.port, proxy.ca_file)
    try:
        path = "/api/v1/namespaces/default/pods/web/exec?command=echo&container=main&stdout=true"
        response = await client.request("GET", path, token=proxy.issuer.token())
    finally:
        await client.close()
    assert response.status == 400
    seen.add(f"Error from server (BadRequest): {response.json()['message']}")  # kubectl's words around it
    seen.records(logs)
    seen.assert_on_the_page()


async def test_what_ready_says(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, stopped: list[ProxyHandle]
) -> None:
    handle = await start_proxy(config, issuer, upstream)
    stopped.append(handle)
    seen = Seen(names(issuer, upstream, handle))
    seen.add(await ready(handle))
    handle.app.proxy.terminate_after(5.0)
    seen.add(await ready(handle))
    seen.assert_on_the_page()


HOSTILE_ISS: Final = "https://evil.example\n2026-12-05 18:49:40,304 INFO kop.proxy: admitted \x1b[32madmin\x1b[0m"


async def test_a_hostile_iss_stays_one_bounded_line(proxy: ProxyHandle, logs: pytest.LogCaptureFixture) -> None:
    token = proxy.issuer.mint(proxy.issuer.claims(iss=HOSTILE_ISS))
    assert (await get(proxy.port, proxy.ca_file, "/api", token=token)).status == 401
    seen = Seen(names(proxy.issuer, proxy.upstream, proxy))
    seen.records(logs)
    seen.assert_on_the_page()
