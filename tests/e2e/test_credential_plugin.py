"""The exec credential plugin with real kubectl, the real proxy and the real Keycloak, whose tokens live
20 seconds here: kubectl keeps working past a token's death because the plugin refreshes it, and when the
IdP revokes the refresh token kubectl fails with the plugin's own explanation.

The cache is seeded as ``make demo`` seeds it: a password grant with ``offline_access``."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kube_oidc_proxy
from kube_oidc_proxy.credential import cache, expiry
from tests.e2e.cluster.cluster import NAMESPACE, Cluster, kubeconfig
from tests.e2e.cluster.idp import CLIENT_ID, PasswordGrant, password_grant
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.drills.keycloak import KeycloakAdmin
from tests.e2e.kube import Kubectl
from tests.support.waiting import until

TOKEN_LIFESPAN_SECONDS = 20
SCOPES = ("openid", "offline_access")
SRC = str(Path(kube_oidc_proxy.__file__).resolve().parents[1])
LIFESPAN = "access.token.lifespan"  # the client's override of the realm's token lifetime (id_tokens too)


def _client(admin: KeycloakAdmin) -> dict[str, Any]:
    (client,) = admin.api("GET", f"/clients?clientId={CLIENT_ID}")
    return dict(client)


def _set_lifespan(admin: KeycloakAdmin, value: str) -> None:
    client = _client(admin)
    client["attributes"] = {**client.get("attributes", {}), LIFESPAN: value}  # "": the realm's again
    admin.api("PUT", f"/clients/{client['id']}", client)


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> KeycloakAdmin:
    return KeycloakAdmin(f"https://127.0.0.1:{cluster.keycloak_port}", cluster.ca_file)


@pytest.fixture(scope="module")
def short_tokens(admin: KeycloakAdmin) -> Iterator[None]:
    """Id tokens of the kube-oidc-proxy client live 20 s while this module runs."""
    before = str(_client(admin).get("attributes", {}).get(LIFESPAN, ""))
    _set_lifespan(admin, str(TOKEN_LIFESPAN_SECONDS))
    try:
        yield
    finally:
        _set_lifespan(admin, before)


def _plugin_kubectl(cluster: Cluster, proxy: Proxy, home: Path, cache_dir: Path) -> Kubectl:
    args = [
        "-m", "kube_oidc_proxy", "credential",
        f"--issuer-url={cluster.issuer}", f"--client-id={CLIENT_ID}", f"--scopes={','.join(SCOPES)}",
        f"--issuer-ca-data={base64.b64encode(cluster.ca_file.read_bytes()).decode()}",
        f"--cache-dir={cache_dir}",
    ]  # fmt: skip
    exec_config = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": args,
        "env": [{"name": "PYTHONPATH", "value": SRC}],
        "interactiveMode": "IfAvailable",  # kubectl under a test has no terminal: never a browser
        "provideClusterInfo": False,
    }
    path = home / "kubeconfig"
    path.write_text(kubeconfig(proxy.url, cluster.ca_file, user={"exec": exec_config}, namespace=NAMESPACE))
    return Kubectl(path, "", home)


def _seed(cluster: Cluster, cache_dir: Path) -> PasswordGrant:
    grant = password_grant(cluster.issuer, cluster.ca_file, "alice", "alice-password", scope=" ".join(SCOPES))
    assert grant.refresh_token
    cache.store_tokens(cache_dir, cluster.issuer, CLIENT_ID, SCOPES, grant.id_token, grant.refresh_token)
    return grant


def _cached(cluster: Cluster, cache_dir: Path) -> cache.Entry:
    entry = cache.load_tokens(cache_dir, cluster.issuer, CLIENT_ID, SCOPES)
    assert entry is not None
    return entry


def _pods(kubectl: Kubectl) -> list[str]:
    return kubectl.run("get", "pods", "-o", "name", check=True).stdout.decode().split()


def _whoami(kubectl: Kubectl) -> str:
    result = kubectl.run("auth", "whoami", "-o", "json", check=True)
    return str(json.loads(result.stdout)["status"]["userInfo"]["username"])


async def test_kubectl_works_past_the_token_lifetime_then_explains_a_revoked_refresh_token(
    cluster: Cluster, proxy: Proxy, short_tokens: None, admin: KeycloakAdmin, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    seeded = _seed(cluster, cache_dir)
    first = expiry.claims(seeded.id_token)
    assert first["exp"] - first["iat"] == TOKEN_LIFESPAN_SECONDS
    kubectl = _plugin_kubectl(cluster, proxy, tmp_path, cache_dir)

    assert _pods(kubectl)
    assert _whoami(kubectl) == "alice@example.com"
    assert _cached(cluster, cache_dir).id_token == seeded.id_token  # served from the cache, no refresh yet

    await until(lambda: time.time() > first["exp"], "alice's first id_token to expire", timeout=60)
    assert _pods(kubectl)

    refreshed = _cached(cluster, cache_dir)
    assert refreshed.id_token != seeded.id_token
    assert expiry.claims(refreshed.id_token)["exp"] > time.time()
    assert expiry.claims(refreshed.id_token)["sub"] == first["sub"]
    assert refreshed.refresh_token not in (None, seeded.refresh_token)

    # The IdP revokes alice's offline token for this client (as "Revoke" in her account console would).
    (user,) = admin.api("GET", "/users?username=alice&exact=true")
    admin.api("DELETE", f"/users/{user['id']}/consents/{CLIENT_ID}")
    second = expiry.claims(refreshed.id_token)
    await until(lambda: time.time() > second["exp"], "alice's refreshed id_token to expire", timeout=60)

    failed = kubectl.run("get", "pods")
    stderr = failed.stderr.decode()
    assert failed.returncode != 0
    assert "kube-oidc-proxy credential: the identity provider refused the cached refresh token" in stderr
    assert "invalid_grant" in stderr
    assert "run kubectl from a terminal (e.g. kubectl auth whoami) to log in" in stderr
    assert cache.load_tokens(cache_dir, cluster.issuer, CLIENT_ID, SCOPES) is None


def test_a_bogus_refresh_token_makes_kubectl_fail_with_the_plugins_message(
    cluster: Cluster, proxy: Proxy, short_tokens: None, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    expired = {"exp": int(time.time()) - 60, "iat": int(time.time()) - 80}
    unusable_id_token = "e30." + base64.urlsafe_b64encode(json.dumps(expired).encode()).decode().rstrip("=") + ".x"
    cache.store_tokens(cache_dir, cluster.issuer, CLIENT_ID, SCOPES, unusable_id_token, "not-a-refresh-token")
    kubectl = _plugin_kubectl(cluster, proxy, tmp_path, cache_dir)

    failed = kubectl.run("get", "pods")

    stderr = failed.stderr.decode()
    assert failed.returncode != 0
    assert "kube-oidc-proxy credential: the identity provider refused the cached refresh token" in stderr
    assert "kube-oidc-proxy credential: error: no valid token for " in stderr
    assert "not-a-refresh-token" not in stderr
