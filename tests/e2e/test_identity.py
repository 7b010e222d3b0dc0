"""Who kube-apiserver sees: the OIDC user, in RBAC decisions and in its audit log; never anyone else.
Ports of the Go proxy's e2e cases "token", "rbac", "impersonation", "headers" and "probe"."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.processes import wait_until
from tests.e2e.cluster.proxy import Proxy, probe_status
from tests.e2e.kube import Kubectl, api_call


def _audit_events(cluster: Cluster, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = [json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line.strip()]
        found = [e for e in events if predicate(e)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_bad_tokens_are_refused_before_the_api_server(proxy: Proxy, cluster: Cluster, alice: Kubectl) -> None:
    # the Go e2e "token" case: no token, garbage, another issuer's token (here: a service-account token)
    sa_token = cluster.api().token("kube-oidc-proxy", "kube-oidc-proxy")
    for token in ("", "bad token", "not-a-jwt", sa_token, alice.token + "x"):
        status, body = api_call(proxy, "GET", "/api/v1/namespaces/e2e/pods", token)
        assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"


def test_the_audit_log_shows_the_oidc_user(cluster: Cluster, alice: Kubectl) -> None:
    alice.run("get", "pod", "db", check=True)
    events = _audit_events(
        cluster,
        lambda e: (
            e.get("objectRef", {}).get("name") == "db"
            and e.get("impersonatedUser", {}).get("username") == "alice@example.com"
        ),
    )
    assert events, "no audit event for alice's get of pod db"
    event = events[-1]
    assert event["user"]["username"] == "system:serviceaccount:kube-oidc-proxy:kube-oidc-proxy"
    assert "oidc:developers" in event["impersonatedUser"]["groups"]
    assert "system:authenticated" in event["impersonatedUser"]["groups"]


def test_rbac_follows_the_oidc_groups(alice: Kubectl, bob: Kubectl) -> None:
    # the Go e2e "rbac" case: permissions come from the groups in the token, and only from them
    assert alice.run("auth", "can-i", "delete", "configmaps").stdout.strip() == b"yes"
    assert bob.run("auth", "can-i", "delete", "configmaps").stdout.strip() == b"no"
    assert bob.run("auth", "can-i", "list", "secrets", "-A").stdout.strip() == b"no"


def test_kubectl_as_is_checked_with_subject_access_reviews(alice: Kubectl, bob: Kubectl) -> None:
    # the Go e2e "impersonation" case (Tremolo): allowed user+group works, the rest is refused
    as_bob = ("--as=bob@example.com", "--as-group=oidc:viewers")
    assert b"pod/web" in alice.run("get", "pods", "-o", "name", *as_bob, check=True).stdout
    refused_by_rbac = alice.run("get", "configmaps", *as_bob)  # bob may not, so neither may alice-as-bob
    assert refused_by_rbac.returncode != 0 and b'User "bob@example.com" cannot list' in refused_by_rbac.stderr
    not_allowed = alice.run("get", "pods", "--as=root")
    assert not_allowed.returncode != 0
    assert b'users "root" is forbidden' in not_allowed.stderr or b'users "root" is forbidden' in not_allowed.stderr
    wrong_group = alice.run("get", "pods", "--as=bob@example.com", "--as-group=system:masters")
    assert wrong_group.returncode != 0 and b"groups" in wrong_group.stderr and b"forbidden" in wrong_group.stderr
    assert bob.run("get", "pods", "--as=alice@example.com").returncode != 0


def test_as_uid_and_the_original_user_reach_the_api_server(alice: Kubectl, cluster: Cluster) -> None:
    whoami = alice.run(
        "auth", "whoami", "--as=bob@example.com", "--as-group=oidc:viewers", "--as-uid=1001", "-o", "json", check=True
    )
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "bob@example.com" and info["uid"] == "1001"
    assert info["extra"]["originaluser.jetstack.io-user"] == ["alice@example.com"]
    assert "oidc:developers" in info["extra"]["originaluser.jetstack.io-groups"]
    alice.run("get", "pod", "web", "--as=bob@example.com", "--as-group=oidc:viewers", check=True)
    events = _audit_events(
        cluster,
        lambda e: (
            e.get("objectRef", {}).get("name") == "web"
            and e.get("impersonatedUser", {}).get("username") == "bob@example.com"
        ),
    )
    assert events
    impersonated = events[-1]["impersonatedUser"]
    assert impersonated["extra"]["originaluser.jetstack.io-user"] == ["alice@example.com"]
    assert impersonated["groups"] == ["oidc:viewers", "system:authenticated"]


def test_a_service_account_token_passes_through_with_token_passthrough(cluster: Cluster) -> None:
    # the Go e2e "passthrough" case: without the flag a TokenRequest token is refused, with it it works
    api = cluster.api()
    api.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci", "namespace": "e2e"}})
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "ci-viewer", "namespace": "e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "e2e"}],
        }
    )
    token = api.token("e2e", "ci")
    passthrough = Proxy(cluster)
    passthrough.start("--token-passthrough")
    try:
        status, body = api_call(passthrough, "GET", "/api/v1/namespaces/e2e/pods/web", token)
        assert status == 200 and body["metadata"]["name"] == "web"
        status, _ = api_call(passthrough, "GET", "/api/v1/namespaces/e2e/secrets", token)
        assert status == 403  # RBAC of the service account itself
    finally:
        passthrough.stop()
    events = _audit_events(
        cluster, lambda e: e["user"].get("username") == "system:serviceaccount:e2e:ci" and "impersonatedUser" not in e
    )
    assert events


def test_extra_user_headers_reach_the_api_server(cluster: Cluster, proxy: Proxy, tmp_path: Path) -> None:
    # the Go e2e "headers" case, checked in kube-apiserver's own audit log. Custom extras need their own
    # RBAC (deploy/rbac.yaml says so): without it kube-apiserver refuses the impersonation.
    without_rbac = Proxy(cluster)
    without_rbac.start("--extra-user-headers=key1=foo")
    try:
        token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        status, body = api_call(without_rbac, "GET", "/api/v1/namespaces/e2e/pods/web", token)
        assert status == 403 and "userextras/key1" in body["message"]
    finally:
        without_rbac.stop()
    api = cluster.api()
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "kube-oidc-proxy-e2e-extras"},
            "rules": [
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["userextras/key1", "userextras/key2"],
                    "verbs": ["impersonate"],
                }
            ],
        }
    )
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "kube-oidc-proxy-e2e-extras"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "kube-oidc-proxy-e2e-extras",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "kube-oidc-proxy", "namespace": "kube-oidc-proxy"}],
        }
    )
    extra = Proxy(cluster)
    extra.start("--extra-user-header-client-ip", "--extra-user-headers=key1=foo,key2=foo,key1=bar")
    try:
        token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        status, _ = api_call(extra, "GET", "/api/v1/namespaces/e2e/pods/web", token)
        assert status == 200
    finally:
        extra.stop()
    events = _audit_events(cluster, lambda e: "key1" in e.get("impersonatedUser", {}).get("extra", {}))
    assert events
    extras = events[-1]["impersonatedUser"]["extra"]
    assert extras["key1"] == ["foo", "bar"] and extras["key2"] == ["foo"]
    assert extras["remote-client-ip"] == ["127.0.0.1"]
    assert extras["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_readiness_follows_the_issuer(cluster: Cluster, proxy: Proxy) -> None:
    # the Go e2e "probe" case: with the issuer unreachable the proxy never becomes ready
    assert probe_status(proxy.probe_port) == 200
    orphan = Proxy(cluster)
    issuer = f"https://127.0.0.1:{orphan.ports.take()}/realms/none"  # held, never listening: refused
    orphan.start(f"--oidc-issuer-url={issuer}", wait_ready=False)
    try:
        # once the first fetch has failed, readiness says so, naming the address it tried
        failed = f"GET {issuer}/.well-known/openid-configuration: ConnectionRefusedError"
        wait_until("the failed key fetch", lambda: failed in json.dumps(_readiness(orphan.probe_port)), 30)
        assert probe_status(orphan.probe_port) == 503
    finally:
        orphan.stop()


def _readiness(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return dict(json.loads(error.read()))


def test_the_proxy_token_rotates_with_zero_failed_requests(proxy: Proxy, alice: Kubectl) -> None:
    rotations = proxy.rotations
    failures = []
    deadline = time.monotonic() + 4 * 3.0 + 1
    requests = 0
    while time.monotonic() < deadline:
        status, body = api_call(proxy, "GET", "/api/v1/namespaces/e2e/pods/web", alice.token)
        requests += 1
        if status != 200:
            failures.append(body)
    assert proxy.rotations >= rotations + 3, "the fixture did not rotate the token"
    assert requests > 20
    assert failures == []


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_access_lines_name_the_user(proxy: Proxy, user: str, alice: Kubectl, bob: Kubectl) -> None:
    kubectl = alice if user == "alice" else bob
    kubectl.run("get", "pods", check=True)
    time.sleep(0.2)
    assert any(f"inbound:[{user}@example.com / oidc:" in line for line in proxy.access_lines())
