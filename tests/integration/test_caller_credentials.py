"""A request sent with the caller's own credential never rides a connection that authenticates as the proxy.

kube-apiserver authenticates a client certificate before a bearer token: a passed-through request on the
proxy's TLS connection would run as the proxy, and its ``Impersonate-*`` headers would be honoured with the
proxy's right to impersonate anyone. The upstream here asks for client certificates, as kube-apiserver does,
and records which one each request came with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trustme

from kube_oidc_proxy.config import Config
from tests.conftest import PROXY_SA_TOKEN, ProxyHandle, start_proxy
from tests.support.certs import CertFiles
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import Recorded, RecordingUpstream

PROXY_CERT_NAME = "kube-oidc-proxy"
SA_TOKEN = "sa.token.from-tokenrequest"
ESCALATION = [("Impersonate-User", "system:admin"), ("Impersonate-Group", "system:masters")]


@dataclass
class MutualTLS:
    upstream: RecordingUpstream
    config: Config


@pytest.fixture
def mtls(tmp_path: Path, server_certs: CertFiles, config: Config) -> MutualTLS:
    """An upstream that asks for client certificates, and a proxy config that presents one and a token."""
    client_ca = trustme.CA()
    issued = client_ca.issue_cert(PROXY_CERT_NAME)
    cert, key, ca = tmp_path / "proxy.crt", tmp_path / "proxy.key", tmp_path / "client-ca.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    client_ca.cert_pem.write_to_path(str(ca))
    upstream = RecordingUpstream(server_certs, client_ca=str(ca))
    upstream.token_reviews[SA_TOKEN] = {"authenticated": True, "user": {"username": "system:serviceaccount:ci:ci"}}
    client = replace(config.client, server=upstream.url, client_certificate=str(cert), client_key=str(key))
    return MutualTLS(upstream, replace(config, client=client))


@pytest.fixture
async def passthrough(mtls: MutualTLS, issuer: TestIssuer) -> AsyncIterator[ProxyHandle]:
    config = replace(mtls.config, proxy=replace(mtls.config.proxy, token_passthrough=True))
    handle = await start_proxy(config, issuer, mtls.upstream)
    yield handle
    await handle.running.stop(grace=1)
    mtls.upstream.close()


def _last(upstream: RecordingUpstream, path: str) -> Recorded:
    return [r for r in upstream.requests if r.target.startswith(path)][-1]


def _as_caller(seen: Recorded, token: str) -> None:
    """Exactly the caller's credential: no certificate of the proxy's, no token of the proxy's."""
    assert seen.client_cert == ""
    assert seen.all("authorization") == [f"Bearer {token}"]


async def test_a_passed_through_request_carries_neither_the_proxys_certificate_nor_its_token(
    passthrough: ProxyHandle,
) -> None:
    upstream = passthrough.upstream
    response = await get(passthrough.port, passthrough.ca_file, "/api/v1/secrets", token=SA_TOKEN, headers=ESCALATION)
    assert response.status == 200
    seen = _last(upstream, "/api/v1/secrets")
    _as_caller(seen, SA_TOKEN)
    # kube-apiserver judges these with the caller's own token, as if the proxy were not there
    assert seen.all("impersonate-user") == ["system:admin"]
    # the proxy's own work still goes as the proxy: the TokenReview and impersonated requests
    review = _last(upstream, "/apis/authentication.k8s.io/v1/tokenreviews")
    assert review.client_cert == PROXY_CERT_NAME
    assert review.all("authorization") == [f"Bearer {PROXY_SA_TOKEN}"]
    assert (await get(passthrough.port, passthrough.ca_file, "/api", token=passthrough.issuer.token())).status == 200
    impersonated = _last(upstream, "/api")
    assert impersonated.client_cert == PROXY_CERT_NAME
    assert impersonated.all("impersonate-user") == ["alice"]


async def test_passed_through_watches_and_upgrades_use_the_callers_connections_too(passthrough: ProxyHandle) -> None:
    upstream = passthrough.upstream
    # a watch goes over HTTP/2 upstream; an exec is an upgrade on its own connection: both are the caller's
    for target, extra in (
        ("/api/v1/namespaces/default/pods?watch=true", ""),
        ("/api/v1/namespaces/default/pods/web/exec?command=sh", "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"),
    ):
        request = (
            f"GET {target} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {SA_TOKEN}\r\n"
            f"Impersonate-User: system:admin\r\n{extra}\r\n"
        )
        client = await Client.connect(passthrough.port, passthrough.ca_file)
        try:
            await client.send_raw(request.encode())
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 10)  # the stream stays open
            assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 101 ")), head
        finally:
            await client.close()
        seen = _last(upstream, target)
        _as_caller(seen, SA_TOKEN)
        assert seen.all("impersonate-user") == ["system:admin"]
    assert _last(upstream, "/api/v1/namespaces/default/pods?").http_version == "2"  # the watch went over HTTP/2


async def test_disable_impersonation_sends_the_callers_token_on_a_connection_without_the_proxys_certificate(
    mtls: MutualTLS, issuer: TestIssuer
) -> None:
    config = replace(mtls.config, proxy=replace(mtls.config.proxy, disable_impersonation=True))
    handle = await start_proxy(config, issuer, mtls.upstream)
    try:
        token = issuer.token()
        assert (await get(handle.port, handle.ca_file, "/api", token=token, headers=ESCALATION)).status == 200
        seen = _last(mtls.upstream, "/api")
        _as_caller(seen, token)
        assert seen.all("impersonate-group") == ["system:masters"]  # for kube-apiserver to refuse the caller
    finally:
        await handle.running.stop(grace=1)
        mtls.upstream.close()


async def test_the_record_names_whom_a_passed_through_caller_asked_to_impersonate(passthrough: ProxyHandle) -> None:
    await get(passthrough.port, passthrough.ca_file, "/api/v1/secrets", token=SA_TOKEN, headers=ESCALATION)
    line = await passthrough.access.wait_for("AuSuccess")
    assert "inbound:[system:serviceaccount:ci:ci / system:authenticated /]" in line
    assert "outbound:[system:admin / system:masters / " in line


async def test_impersonation_headers_kube_apiserver_would_refuse_are_refused_on_passthrough_too(
    passthrough: ProxyHandle,
) -> None:
    before = len(passthrough.upstream.requests)
    response = await get(
        passthrough.port, passthrough.ca_file, "/api", token=SA_TOKEN, headers=[("Impersonate-Group", "g")]
    )
    assert response.status == 400  # a group without a user: kube-apiserver refuses it too
    assert [r.target for r in passthrough.upstream.requests[before:] if "reviews" not in r.target] == []
