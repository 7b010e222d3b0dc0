"""--authentication-config end to end: kube-apiserver's AuthenticationConfiguration file instead of the
--oidc-* flags, with Keycloak's real id tokens, checked by what the real kube-apiserver sees
(``kubectl auth whoami``, RBAC), and the file re-read while the proxy runs."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster.cluster import NAMESPACE, PROXY_NAMESPACE, AdminClient, Cluster
from tests.e2e.cluster.idp import CLIENT_ID, id_token
from tests.e2e.cluster.proxy import SERVICE_ACCOUNT, Proxy, probe_status
from tests.e2e.kube import Kubectl, api_call
from tests.support.ports import PortHolder

TENANT = "example.com/tenant"
EMAIL = "example.com/email"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
RBAC_NAME = "kube-oidc-proxy-e2e-authentication-config"


# --- the proxy, started with the file instead of the --oidc-* flags -------------------------------------


def _start_proxy(cluster: Cluster, config: Path) -> Proxy:
    proxy = Proxy(cluster)
    proxy.start(authentication_config=config)
    return proxy


def _log(proxy: Proxy) -> str:
    assert proxy.process is not None
    return proxy.process.log_path.read_text(errors="replace")


def _write_atomically(path: Path, config: dict[str, Any]) -> None:
    """As the kubelet updates a mounted ConfigMap: a new file, renamed over the old one."""
    partial = path.with_name(f".{path.name}.new")
    partial.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(partial, path)


# --- configurations --------------------------------------------------------------------------------------


def _authentication_config(cluster: Cluster, **jwt: Any) -> dict[str, Any]:
    issuer = {"url": cluster.issuer, "audiences": [CLIENT_ID], "certificateAuthority": cluster.ca_file.read_text()}
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{"issuer": issuer, **jwt}],
    }


def _cel_mappings() -> dict[str, Any]:
    return {
        "username": {"expression": "'kc:' + claims.preferred_username"},
        "groups": {"expression": "claims.groups.map(g, 'kc-group:' + g)"},
        "uid": {"claim": "sub"},
        "extra": [
            {"key": TENANT, "valueExpression": "'acme'"},
            {"key": EMAIL, "valueExpression": "claims.email_verified ? [claims.email] : []"},
        ],
    }


def _prefix_mappings(prefix: str) -> dict[str, Any]:
    return {
        "username": {"claim": "preferred_username", "prefix": prefix},
        "groups": {"claim": "groups", "prefix": "kc-group:"},
    }


# --- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(cluster: Cluster) -> dict[str, str]:
    return {user: id_token(cluster.issuer, cluster.ca_file, user, f"{user}-password") for user in ("alice", "bob")}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _delete(api: AdminClient, path: str) -> None:
    # urllib's HTTPError (a 404) is an OSError; a cleanup must not hide the test's own failure
    with contextlib.suppress(OSError):
        api.request("DELETE", path)


@pytest.fixture(scope="module")
def rbac(cluster: Cluster) -> Iterator[AdminClient]:
    """What the mapped identities need: the proxy's ServiceAccount may impersonate the extra keys the file
    maps (deploy/rbac.yaml already has uids and credential-id), and kc:alice (not kc:bob) may read pods."""
    api = cluster.api()
    rbac_v1 = "rbac.authorization.k8s.io/v1"
    api.apply(
        {
            "apiVersion": rbac_v1,
            "kind": "ClusterRole",
            "metadata": {"name": RBAC_NAME},
            "rules": [
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": [f"userextras/{TENANT}", f"userextras/{EMAIL}"],
                    "verbs": ["impersonate"],
                }
            ],
        }
    )
    api.apply(
        {
            "apiVersion": rbac_v1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": RBAC_NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RBAC_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": PROXY_NAMESPACE}],
        }
    )
    api.apply(
        {
            "apiVersion": rbac_v1,
            "kind": "RoleBinding",
            "metadata": {"name": RBAC_NAME, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kc:alice"}],
        }
    )
    try:
        yield api
    finally:
        _delete(api, f"/apis/{rbac_v1}/namespaces/{NAMESPACE}/rolebindings/{RBAC_NAME}")
        _delete(api, f"/apis/{rbac_v1}/clusterrolebindings/{RBAC_NAME}")
        _delete(api, f"/apis/{rbac_v1}/clusterroles/{RBAC_NAME}")


@pytest.fixture
def start(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], tuple[Proxy, Path]]]:
    """Start a proxy on a config file (written here); every proxy started is stopped after the test."""
    started: list[Proxy] = []

    def run(config: dict[str, Any]) -> tuple[Proxy, Path]:
        path = tmp_path / f"authentication-config-{len(started)}.yaml"
        _write_atomically(path, config)
        proxy = _start_proxy(cluster, path)
        started.append(proxy)
        return proxy, path

    try:
        yield run
    finally:
        for proxy in started:
            proxy.stop()


def _kubectl(proxy: Proxy, token: str, home: Path) -> Kubectl:
    home.mkdir(parents=True, exist_ok=True)
    return Kubectl.through(proxy, token, home)


def _whoami(kubectl: Kubectl) -> dict[str, Any]:
    result = kubectl.run("auth", "whoami", "-o", "json", check=True)
    info: dict[str, Any] = json.loads(result.stdout)["status"]["userInfo"]
    return info


def _poll(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


# --- the tests -------------------------------------------------------------------------------------------


def test_cel_claim_mappings_reach_the_api_server(
    start: Callable[[dict[str, Any]], tuple[Proxy, Path]],
    cluster: Cluster,
    tokens: dict[str, str],
    rbac: AdminClient,
    tmp_path: Path,
) -> None:
    proxy, _ = start(_authentication_config(cluster, claimMappings=_cel_mappings()))
    alice = _kubectl(proxy, tokens["alice"], tmp_path / "alice")
    bob = _kubectl(proxy, tokens["bob"], tmp_path / "bob")
    for user, kubectl, group in (("alice", alice, "developers"), ("bob", bob, "viewers")):
        claims = _claims(kubectl.token)
        info = _whoami(kubectl)
        assert info["username"] == f"kc:{user}"
        assert sorted(info["groups"]) == [f"kc-group:{group}", "system:authenticated"]
        assert info["uid"] == claims["sub"]
        assert info["extra"] == {
            TENANT: ["acme"],
            EMAIL: [f"{user}@example.com"],
            CREDENTIAL_ID: [f"JTI={claims['jti']}"],
        }
    # RBAC follows the mapped names: the RoleBinding names the user kc:alice, nobody else
    assert b"pod/web" in alice.run("get", "pods", "-o", "name", check=True).stdout
    refused = bob.run("get", "pods")
    assert refused.returncode != 0
    assert b'User "kc:bob" cannot list resource "pods"' in refused.stderr, refused.stderr
    # and the old --oidc-* identity (email, oidc:developers) is gone: alice's group has no binding now
    assert alice.run("get", "configmaps").returncode != 0


@pytest.mark.parametrize(
    ("rules", "refused", "allowed", "message"),
    [
        pytest.param(
            {"claimValidationRules": [{"expression": "!('viewers' in claims.groups)", "message": "no viewers"}]},
            "bob",
            "alice",
            "no viewers",
            id="claimValidationRules",
        ),
        pytest.param(
            {"userValidationRules": [{"expression": "user.username != 'kc:alice'", "message": "alice is out"}]},
            "alice",
            "bob",
            "alice is out",
            id="userValidationRules",
        ),
    ],
)
def test_validation_rules_refuse_a_user(
    start: Callable[[dict[str, Any]], tuple[Proxy, Path]],
    cluster: Cluster,
    tokens: dict[str, str],
    rbac: AdminClient,
    tmp_path: Path,
    rules: dict[str, Any],
    refused: str,
    allowed: str,
    message: str,
) -> None:
    proxy, _ = start(_authentication_config(cluster, claimMappings=_cel_mappings(), **rules))
    no = _kubectl(proxy, tokens[refused], tmp_path / refused)
    for args in (("auth", "whoami"), ("get", "pods")):
        result = no.run(*args)
        assert result.returncode != 0 and b"You must be logged in to the server" in result.stderr, result.stderr
    status, body = api_call(proxy, "GET", "/api/v1/namespaces/e2e/pods", tokens[refused])
    assert (status, body["kind"], body["reason"]) == (401, "Status", "Unauthorized")
    assert message not in json.dumps(body)  # the reason is for the proxy's log, as in kube-apiserver
    assert message in _log(proxy)
    assert _whoami(_kubectl(proxy, tokens[allowed], tmp_path / allowed))["username"] == f"kc:{allowed}"


def test_the_file_is_reloaded_and_a_bad_edit_keeps_the_old_config(
    start: Callable[[dict[str, Any]], tuple[Proxy, Path]],
    cluster: Cluster,
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    proxy, path = start(_authentication_config(cluster, claimMappings=_prefix_mappings("v1:")))
    alice = _kubectl(proxy, tokens["alice"], tmp_path / "alice")
    info = _whoami(alice)
    assert info["username"] == "v1:alice"
    assert sorted(info["groups"]) == ["kc-group:developers", "system:authenticated"]

    # a new username prefix, as a ConfigMap update: seen within a few seconds (the proxy polls every 2 s)
    _write_atomically(path, _authentication_config(cluster, claimMappings=_prefix_mappings("v2:")))
    took = _poll("the new prefix", lambda: _whoami(alice)["username"] == "v2:alice", 15)
    assert took < 6, f"the changed file took {took:.1f}s to be used"
    changed = f"--authentication-config {path} changed: now using issuers {cluster.issuer}"
    _poll("the change in the log", lambda: changed in _log(proxy), 15)  # the log is written by its own thread

    # an invalid edit (a claim mapping without a prefix): logged, and the previous configuration stays
    bad = _authentication_config(cluster, claimMappings={"username": {"claim": "preferred_username"}})
    _write_atomically(path, bad)
    _poll("the refusal in the log", lambda: "is not valid, keeping the previous configuration" in _log(proxy), 15)
    refusal = next(line for line in _log(proxy).splitlines() if "is not valid" in line)
    assert f"--authentication-config {path} is not valid, keeping the previous configuration: " in refusal
    assert "jwt[0].claimMappings.username.prefix: Required value" in refusal
    for _ in range(3):  # across further polls of the unchanged bad file
        assert _whoami(alice)["username"] == "v2:alice"
        assert _whoami(_kubectl(proxy, tokens["bob"], tmp_path / "bob"))["username"] == "v2:bob"
        time.sleep(1)
    assert _log(proxy).count("is not valid, keeping the previous configuration") == 1  # said once, not per poll
    assert probe_status(proxy.probe_port) == 200

    # a bad edit does not stop the reloading: the next good file is used
    _write_atomically(path, _authentication_config(cluster, claimMappings=_prefix_mappings("v3:")))
    _poll("the prefix after the bad edit", lambda: _whoami(alice)["username"] == "v3:alice", 15)


def test_an_invalid_file_at_startup_is_refused_with_kube_apiservers_reason(
    cluster: Cluster, tmp_path: Path, ports: PortHolder
) -> None:
    # kube-apiserver's rule: a username expression using claims.email must also use claims.email_verified
    config = tmp_path / "authentication-config.yaml"
    mappings = {"username": {"expression": "claims.email"}}
    _write_atomically(config, _authentication_config(cluster, claimMappings=mappings))
    assert cluster.ca is not None
    tls = cluster.ca.serving("kube-oidc-proxy")
    argv = [
        sys.executable,
        "-m",
        "kube_oidc_proxy",
        f"--authentication-config={config}",
        f"--secure-port={ports.take()}",
    ]
    argv += [
        f"--tls-cert-file={tls.cert}",
        f"--tls-private-key-file={tls.key}",
        f"--kubeconfig={cluster.admin_kubeconfig}",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "jwt[0].claimMappings.username.expression" in result.stderr, result.stderr
    assert "claims.email_verified must be used in claimMappings.username.expression" in result.stderr, result.stderr
