"""The caller's connections are made from the proxy's target with every credential taken out."""

from __future__ import annotations

from dataclasses import fields

from kube_oidc_proxy.kube.execcredential import ExecConfig
from kube_oidc_proxy.kube.target import UpstreamTarget
from kube_oidc_proxy.server.upstreams import without_credentials

CREDENTIALS = {"client_cert_pem", "client_key_pem", "token", "token_file", "exec_config"}


def test_the_callers_target_keeps_the_address_and_trust_and_nothing_that_authenticates() -> None:
    proxy = UpstreamTarget(
        scheme="https",
        host="10.0.0.1",
        port=6443,
        ca_pem=b"ca",
        tls_server_name="kubernetes",
        client_cert_pem=b"cert",
        client_key_pem=b"key",
        token="proxy-token",
        token_file="/var/run/token",
        request_timeout=30.0,
        exec_config=ExecConfig.from_kubeconfig({"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}, {}),
    )
    caller = without_credentials(proxy)
    for field in fields(UpstreamTarget):
        if field.name in CREDENTIALS:
            assert not getattr(caller, field.name), field.name
        else:
            assert getattr(caller, field.name) == getattr(proxy, field.name), field.name
    # renaming a credential field must update the list, or this test would pass without checking it
    assert {f.name for f in fields(UpstreamTarget)} >= CREDENTIALS
