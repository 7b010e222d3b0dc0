"""The proxy's own identity towards kube-apiserver: rotating token files and client certificates."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import trustme

from kube_oidc_proxy.config import Config
from tests.conftest import start_proxy
from tests.support.certs import CertFiles
from tests.support.client import get
from tests.support.execplugin import plugin
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream


async def test_a_rotated_token_file_is_used_after_a_401(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    kubeconfig = tmp_path / "kubeconfig"
    ca_file = config.client.certificate_authority
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f'clusters: [{{name: c, cluster: {{server: "{upstream.url}", certificate-authority: "{ca_file}"}}}}]\n'
        "users: [{name: u, user: {tokenFile: token}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    cfg = replace(
        config, client=replace(config.client, kubeconfig=str(kubeconfig), server="", token="", certificate_authority="")
    )
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        assert upstream.requests[-1].one("authorization") == "Bearer first-token"
        token_file.write_text("second-token\n")
        # kube-apiserver refuses the old token: the next request already carries the new one
        assert (await get(handle.port, handle.ca_file, "/status/401", token=issuer.token())).status == 401
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        assert upstream.requests[-1].one("authorization") == "Bearer second-token"
    finally:
        await handle.running.stop(grace=1)


async def test_a_client_certificate_authenticates_the_proxy(
    tmp_path: Path, ca: trustme.CA, issuer: TestIssuer, server_certs: CertFiles, config: Config
) -> None:
    client_ca = trustme.CA()
    client_cert = client_ca.issue_cert("kube-oidc-proxy")
    cert_file, key_file, client_ca_file = tmp_path / "c.crt", tmp_path / "c.key", tmp_path / "cca.crt"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    mtls = RecordingUpstream(server_certs, client_ca=str(client_ca_file))
    cfg = replace(
        config,
        client=replace(
            config.client, server=mtls.url, token="", client_certificate=str(cert_file), client_key=str(key_file)
        ),
    )
    handle = await start_proxy(cfg, issuer, mtls)
    try:
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        await asyncio.sleep(0)
        presented = [cert.get("subjectAltName") for cert in mtls.peer_certs if cert]
        assert presented and all(alt == (("DNS", "kube-oidc-proxy"),) for alt in presented)
        assert mtls.requests[-1].one("authorization") is None
        assert mtls.requests[-1].one("impersonate-user") == "alice"
    finally:
        await handle.running.stop(grace=1)
        mtls.close()


async def test_a_kubeconfig_exec_plugin_supplies_the_proxy_token(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, config: Config
) -> None:
    script = plugin(tmp_path, expires_in=None)
    kubeconfig = tmp_path / "kubeconfig"
    ca_file = config.client.certificate_authority
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f'clusters: [{{name: c, cluster: {{server: "{upstream.url}", certificate-authority: "{ca_file}"}}}}]\n'
        f'users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, command: "{script}"}}}}}}]\n'
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    cfg = replace(
        config, client=replace(config.client, kubeconfig=str(kubeconfig), server="", token="", certificate_authority="")
    )
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token())).status == 200
        assert upstream.requests[-1].one("authorization") == "Bearer TOKEN-1"
        # kube-apiserver refuses it: the plugin runs again and the next requests carry its new token
        assert (await get(handle.port, handle.ca_file, "/status/401", token=issuer.token())).status == 401
        for _ in range(100):
            await get(handle.port, handle.ca_file, "/api", token=issuer.token())
            if upstream.requests[-1].one("authorization") == "Bearer TOKEN-2":
                break
            await asyncio.sleep(0.05)
        assert upstream.requests[-1].one("authorization") == "Bearer TOKEN-2"
    finally:
        await handle.running.stop(grace=1)
