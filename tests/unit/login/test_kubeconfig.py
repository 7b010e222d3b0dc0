"""login.kubeconfig and login.proxyca: the kubeconfig the page offers, in both plugin variants, and which CA
it names for the proxy."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
import trustme
import yaml

from kube_oidc_proxy.login.kubeconfig import KubeconfigParams, Plugin, render
from kube_oidc_proxy.login.proxyca import self_signed_root

ISSUER = "https://issuer.example/realms/k8s"
PARAMS = KubeconfigParams(
    host="kube.example.com:8443", issuer=ISSUER, client_id="kube", scopes=("openid", "email", "offline_access")
)


def parsed(params: KubeconfigParams, plugin: Plugin = Plugin.KUBE_OIDC_PROXY) -> Any:
    return yaml.safe_load(render(params, plugin))


def test_the_plugin_kubeconfig_has_the_shape_the_plugin_and_kubectl_expect() -> None:
    assert parsed(PARAMS) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube.example.com:8443", "cluster": {"server": "https://kube.example.com:8443"}}],
        "users": [
            {
                "name": "oidc@kube.example.com:8443",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "kube-oidc-proxy",
                        "args": [
                            "credential",
                            f"--issuer-url={ISSUER}",
                            "--client-id=kube",
                            "--scopes=openid,email,offline_access",
                        ],
                        "interactiveMode": "IfAvailable",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
        "contexts": [
            {
                "name": "kube.example.com:8443",
                "context": {"cluster": "kube.example.com:8443", "user": "oidc@kube.example.com:8443"},
            }
        ],
        "current-context": "kube.example.com:8443",
    }


def test_the_kubelogin_variant_runs_kubectl_oidc_login_with_each_scope_but_openid() -> None:
    exec_ = parsed(PARAMS, Plugin.KUBELOGIN)["users"][0]["user"]["exec"]
    assert exec_["command"] == "kubectl"
    assert exec_["args"] == [
        "oidc-login",
        "get-token",
        f"--oidc-issuer-url={ISSUER}",
        "--oidc-client-id=kube",
        "--oidc-extra-scope=email",
        "--oidc-extra-scope=offline_access",
    ]


@pytest.mark.parametrize(
    ("plugin", "flag"),
    [(Plugin.KUBE_OIDC_PROXY, "--issuer-ca-data"), (Plugin.KUBELOGIN, "--certificate-authority-data")],
)
def test_the_issuers_ca_goes_to_the_plugin_and_the_proxys_ca_to_kubectl(plugin: Plugin, flag: str) -> None:
    params = replace(PARAMS, proxy_ca_pem=b"PROXY", issuer_ca_pem=b"ISSUER")
    document = parsed(params, plugin)
    assert document["clusters"][0]["cluster"]["certificate-authority-data"] == base64.b64encode(b"PROXY").decode()
    assert document["users"][0]["user"]["exec"]["args"][-1] == f"{flag}={base64.b64encode(b'ISSUER').decode()}"


def test_values_that_look_like_yaml_stay_strings() -> None:
    params = KubeconfigParams(host="[::1]:443", issuer="https://i.example/#: - x", client_id="yes", scopes=("openid",))
    document = parsed(params)
    assert document["clusters"][0]["name"] == "[::1]:443"
    assert document["users"][0]["user"]["exec"]["args"][1:3] == [
        "--issuer-url=https://i.example/#: - x",
        "--client-id=yes",
    ]


def keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in keys(value)}
    if isinstance(node, list):
        return {k for item in node for k in keys(item)}
    return set()


@pytest.mark.parametrize("plugin", list(Plugin))
def test_it_holds_no_credential_of_any_kind(plugin: Plugin) -> None:
    document = parsed(replace(PARAMS, proxy_ca_pem=b"P", issuer_ca_pem=b"I"), plugin)
    assert not keys(document) & {"token", "tokenFile", "client-key-data", "password", "auth-provider", "env"}
    assert not [arg for arg in document["users"][0]["user"]["exec"]["args"] if "secret" in arg]


def test_a_chain_ending_in_a_self_signed_root_names_that_root() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("kube.example.com")
    chain = b"".join(p.bytes() for p in leaf.cert_chain_pems) + ca.cert_pem.bytes()
    assert self_signed_root(chain) == ca.cert_pem.bytes()


def test_a_chain_that_stops_below_its_root_names_none() -> None:
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("kube.example.com")
    assert self_signed_root(b"".join(p.bytes() for p in leaf.cert_chain_pems)) is None
    assert self_signed_root(b"not a certificate") is None


def test_a_self_signed_serving_certificate_is_its_own_ca() -> None:
    ca = trustme.CA()
    assert self_signed_root(ca.cert_pem.bytes()) == ca.cert_pem.bytes()
