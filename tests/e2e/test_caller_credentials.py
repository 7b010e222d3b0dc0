"""A caller's own credential is judged by kube-apiserver as the caller's, even where the proxy itself
authenticates with a client certificate (kube-apiserver checks a certificate before a bearer token, so a
passed-through request on the proxy's TLS connection would run as the proxy, which may impersonate anyone).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import api_call, whoami

PROXY_CERT_USER = "kube-oidc-proxy-by-certificate"
ESCALATION = {"Impersonate-User": "system:admin", "Impersonate-Group": "system:masters"}


@pytest.fixture(scope="module")
def certificate_user(cluster: Cluster) -> Iterator[dict[str, str]]:
    """A kubeconfig user that authenticates by client certificate, with the proxy's ClusterRole."""
    assert cluster.ca is not None
    pair = cluster.ca.issue("proxy-by-certificate", common_name=PROXY_CERT_USER, client=True)
    api = cluster.api()
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": PROXY_CERT_USER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-oidc-proxy"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROXY_CERT_USER}],
        }
    )
    api.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "no-rights", "namespace": "e2e"}})
    yield {"client-certificate": str(pair.cert), "client-key": str(pair.key)}


def test_a_passed_through_token_acts_as_its_owner_not_as_the_proxys_certificate(
    cluster: Cluster, certificate_user: dict[str, str]
) -> None:
    proxy = Proxy(cluster)
    proxy.start("--token-passthrough", kubeconfig_user=certificate_user)
    try:
        # the proxy does work as the certificate's user: an id token is impersonated with its rights
        alice = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        status, body = whoami(proxy, alice)
        assert status == 201 and body["status"]["userInfo"]["username"] == "alice@example.com"
        # a passed-through service-account token is that service account to kube-apiserver
        token = cluster.api().token("e2e", "no-rights")
        status, body = whoami(proxy, token)
        assert status == 201 and body["status"]["userInfo"]["username"] == "system:serviceaccount:e2e:no-rights"
        # and its own impersonation headers are judged against it: it may not impersonate anyone
        status, body = api_call(proxy, "GET", "/api/v1/namespaces/kube-system/secrets", token, ESCALATION)
        assert status == 403, body
        assert 'User "system:serviceaccount:e2e:no-rights" cannot impersonate' in body["message"]
    finally:
        proxy.stop()


def test_with_impersonation_disabled_a_token_kube_apiserver_cannot_verify_stays_unauthenticated(
    cluster: Cluster, certificate_user: dict[str, str]
) -> None:
    # This kube-apiserver has no OIDC configuration: only the proxy's certificate could have made it pass.
    proxy = Proxy(cluster)
    proxy.start("--disable-impersonation", kubeconfig_user=certificate_user)
    try:
        alice = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        status, body = api_call(proxy, "GET", "/api/v1/namespaces/kube-system/secrets", alice, ESCALATION)
        assert status == 401, body
        status, _ = whoami(proxy, alice)
        assert status == 401
    finally:
        proxy.stop()
