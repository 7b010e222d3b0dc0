"""The chart installed with the helm binary into the real kube-apiserver, and the proxy run locally as the
chart's ServiceAccount, to show what the chart grants is exactly what the proxy needs.

Pods do not run in this cluster (no scheduler, no kubelet but the fakelet), but every object of the chart is
created and admitted. The proxy then runs here with a TokenRequest token of the chart's ServiceAccount
(whose only rights are the chart's ClusterRole): kubectl, kubectl --as and a passed-through token work
through it; with each optional feature off (`helm upgrade`), the request that needs it is refused by
kube-apiserver. Last, `helm upgrade` re-signs a serving certificate with 10 days left (with the same CA)
and the Go chart's certificate (with a new CA, whose NOTES command prints it).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import certs, chart
from tests.e2e.admin import Admin
from tests.e2e.cluster.cluster import NAMESPACE as WORKLOADS
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import CLIENT_ID, id_token
from tests.e2e.cluster.processes import wait_until
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import Kubectl, api_call, whoami

# Not the harness's kube-oidc-proxy namespace or ServiceAccount, nor test_chart_apply's: nothing shared.
NAMESPACE = "kop-install"
RELEASE = "kop-install"
FULLNAME = f"{RELEASE}-kube-oidc-proxy"  # also the ServiceAccount, ClusterRole and binding
TLS_SECRET = f"{FULLNAME}-tls"
SERVICE_NAMES = [
    f"{FULLNAME}.{NAMESPACE}.svc.cluster.local",
    f"{FULLNAME}.{NAMESPACE}.svc",
    f"{FULLNAME}.{NAMESPACE}",
    FULLNAME,
]
PASSTHROUGH_SA = "chart-ci"  # a workload's ServiceAccount whose token the proxy passes through


def install_values(cluster: Cluster) -> dict[str, Any]:
    """Keycloak as the issuer, every optional feature on."""
    return {
        "replicaCount": 2,
        "oidc": {
            "issuerUrl": cluster.issuer,
            "clientId": CLIENT_ID,
            "usernameClaim": "email",
            "groupsClaim": "groups",
            "groupsPrefix": "oidc:",
            "caPEM": cluster.ca_file.read_text(),
        },
        "tokenPassthrough": {"enabled": True},
        "extraImpersonationHeaders": {"clientIP": True},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "networkPolicy": {"enabled": True, "from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
        "podDisruptionBudget": {"enabled": True},
    }


@dataclass
class Release:
    admin: Admin
    values: Path
    installed: str  # helm install's output, NOTES included

    def upgrade(self, *settings: str) -> str:
        """`helm upgrade --reuse-values` with ``--set`` settings; its output (the NOTES)."""
        sets = [arg for setting in settings for arg in ("--set", setting)]
        result = self.admin.helm("upgrade", RELEASE, str(chart.CHART), "-n", NAMESPACE, "--reuse-values", *sets)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def restore(self) -> None:
        """Back to the installed values, every feature on."""
        result = self.admin.helm("upgrade", RELEASE, str(chart.CHART), "-n", NAMESPACE, "--values", str(self.values))
        assert result.returncode == 0, result.stderr

    def granted(self) -> set[str]:
        role = self.admin.get("clusterrole", FULLNAME)
        return {res for rule in (role or {}).get("rules", []) for res in rule["resources"]}

    def tls_data(self) -> dict[str, str]:
        secret = self.admin.get("secret", TLS_SECRET, NAMESPACE)
        assert secret is not None
        return dict(secret["data"])

    def set_tls_data(self, data: dict[str, str | None]) -> None:
        """Replace the Secret's data in place (helm keeps owning it); None removes a key."""
        patch = json.dumps({"data": data})
        result = self.admin.run("patch", "secret", TLS_SECRET, "-n", NAMESPACE, "--type=merge", "-p", patch)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    home = tmp_path_factory.mktemp("chart-install")
    admin = Admin(cluster, home)
    admin.stand_in_crds()
    values = home / "values.yaml"
    values.write_text(yaml.safe_dump(install_values(cluster)))
    installed = admin.helm(
        "install", RELEASE, str(chart.CHART), "-n", NAMESPACE, "--create-namespace", "--values", str(values)
    )
    assert installed.returncode == 0, installed.stderr
    yield Release(admin, values, installed.stdout)
    admin.helm("uninstall", RELEASE, "-n", NAMESPACE)


@pytest.fixture(scope="module")
def through_chart(cluster: Cluster, release: Release) -> Iterator[Proxy]:
    """The proxy, as the chart's pod would run it (passthrough and the client-IP extra on), with a token of the
    chart's ServiceAccount."""
    token = cluster.api().token(NAMESPACE, FULLNAME, seconds=3600)
    proxy = Proxy(cluster)
    proxy.start("--token-passthrough", "--extra-user-header-client-ip", kubeconfig_user={"token": token})
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def alice(cluster: Cluster, through_chart: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
    return Kubectl.through(through_chart, token, tmp_path_factory.mktemp("chart-alice"))


@pytest.fixture(scope="module")
def workload_token(cluster: Cluster) -> Iterator[str]:
    """A token of a workload's ServiceAccount that may read pods in the workloads' namespace."""
    api = cluster.api()
    api.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": PASSTHROUGH_SA, "namespace": WORKLOADS}}
    )
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{PASSTHROUGH_SA}-viewer", "namespace": WORKLOADS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": PASSTHROUGH_SA, "namespace": WORKLOADS}],
        }
    )
    yield api.token(WORKLOADS, PASSTHROUGH_SA)


AS_BOB = {"Impersonate-User": "bob@example.com", "Impersonate-Group": "oidc:viewers"}
WEB_POD = f"/api/v1/namespaces/{WORKLOADS}/pods/web"


# -- install ----------------------------------------------------------------------------------------


def test_helm_install_creates_every_object_of_the_chart(release: Release) -> None:
    status = json.loads(release.admin.helm("status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    manifest = release.admin.helm("get", "manifest", RELEASE, "-n", NAMESPACE)
    objects = [o for o in yaml.safe_load_all(manifest.stdout) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret"} <= kinds
    assert {"NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "ServiceMonitor"} <= kinds
    for obj in objects:
        namespace = "" if obj["kind"].startswith("Cluster") else NAMESPACE
        found = release.admin.get(obj["kind"], obj["metadata"]["name"], namespace)
        assert found is not None, f"{obj['kind']} {obj['metadata']['name']} was not created"
    # as the chart says: every rule of deploy/rbac.yaml with every feature on
    assert release.granted() == {res for rule in chart_rbac_rules() for res in rule["resources"]}
    # the first install's NOTES: the certificate's expiry and how to get its CA
    assert "the certificate is valid until" in release.installed
    assert f"get secret {TLS_SECRET} -o jsonpath" in release.installed


def chart_rbac_rules() -> list[dict[str, Any]]:
    documents = yaml.safe_load_all((chart.ROOT / "deploy" / "rbac.yaml").read_text())
    [role] = [d for d in documents if d and d["kind"] == "ClusterRole"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


# -- the chart's RBAC is enough ---------------------------------------------------------------------


def test_kubectl_works_as_the_charts_service_account(alice: Kubectl) -> None:
    assert b"pod/web" in alice.run("get", "pods", "-o", "name", check=True).stdout
    info = json.loads(alice.run("auth", "whoami", "-o", "json", check=True).stdout)["status"]["userInfo"]
    assert info["username"] == "alice@example.com"
    assert info["extra"]["remote-client-ip"] == ["127.0.0.1"]  # extraImpersonationHeaders.clientIP
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_kubectl_as_works_as_the_charts_service_account(alice: Kubectl) -> None:
    as_bob = ("--as=bob@example.com", "--as-group=oidc:viewers")
    assert b"pod/web" in alice.run("get", "pods", "-o", "name", *as_bob, check=True).stdout
    whoami_as = alice.run("auth", "whoami", *as_bob, "--as-uid=1001", "-o", "json", check=True)
    info = json.loads(whoami_as.stdout)["status"]["userInfo"]
    assert (info["username"], info["uid"]) == ("bob@example.com", "1001")
    assert info["extra"]["originaluser.jetstack.io-user"] == ["alice@example.com"]


def test_a_passed_through_token_works_as_the_charts_service_account(through_chart: Proxy, workload_token: str) -> None:
    status, body = api_call(through_chart, "GET", WEB_POD, workload_token)
    assert status == 200 and body["metadata"]["name"] == "web"
    status, body = whoami(through_chart, workload_token)
    assert body["status"]["userInfo"]["username"] == f"system:serviceaccount:{WORKLOADS}:{PASSTHROUGH_SA}"


# -- and exactly enough: each feature off takes its rules away --------------------------------------


def logged(proxy: Proxy, text: str) -> None:
    """The proxy's log (written by a thread of its own) comes to hold ``text``."""
    assert proxy.process is not None
    path = proxy.process.log_path
    wait_until(f"{text!r} in the proxy's log", lambda: text in path.read_text(errors="replace"), 10)


Answer = tuple[int, dict[str, Any]]


def answers_until(what: str, attempt: Callable[[], Answer], wanted: Callable[[int], bool]) -> list[Answer]:
    """Repeat ``attempt()`` until its status is ``wanted`` (RBAC changes reach the authorizer's cache within
    moments, and the proxy remembers a review's answer for 10 s); every answer, in order."""
    answers: list[Answer] = []

    def check() -> bool:
        answers.append(attempt())
        return wanted(answers[-1][0])

    wait_until(what, check, 30)
    return answers


def refused_until(what: str, attempt: Callable[[], Answer]) -> Answer:
    return answers_until(what, attempt, lambda status: status >= 300)[-1]


def test_without_token_passthrough_kube_apiserver_refuses_the_token_review(
    cluster: Cluster, release: Release, through_chart: Proxy, workload_token: str
) -> None:
    release.upgrade("tokenPassthrough.enabled=false")
    try:
        assert "tokenreviews" not in release.granted()
        # a token the proxy has not reviewed yet (a passed token's answer is remembered)
        fresh = cluster.api().token(WORKLOADS, PASSTHROUGH_SA)
        status, body = refused_until("the TokenReview refused", lambda: api_call(through_chart, "GET", WEB_POD, fresh))
        assert status == 503 and body["message"] == "cannot verify the token right now"
        logged(through_chart, "tokenreviews.authentication.k8s.io is forbidden")
    finally:
        release.restore()
    wait_until("passthrough works again", lambda: api_call(through_chart, "GET", WEB_POD, workload_token)[0] == 200, 30)


def test_without_the_client_ip_extra_kube_apiserver_refuses_to_impersonate_it(
    release: Release, through_chart: Proxy, alice: Kubectl
) -> None:
    release.upgrade("extraImpersonationHeaders.clientIP=false")
    try:
        assert "userextras/remote-client-ip" not in release.granted()
        status, body = refused_until(
            "remote-client-ip refused", lambda: api_call(through_chart, "GET", WEB_POD, alice.token)
        )
        assert status == 403
        assert 'cannot impersonate resource "userextras/remote-client-ip"' in body["message"]
    finally:
        release.restore()
    wait_until("the extra is allowed again", lambda: api_call(through_chart, "GET", WEB_POD, alice.token)[0] == 200, 30)


def test_without_kubectl_as_kube_apiserver_refuses_the_subject_access_review(
    release: Release, through_chart: Proxy, alice: Kubectl
) -> None:
    release.upgrade("rbac.kubectlAs=false")
    try:
        assert not {"subjectaccessreviews", "serviceaccounts", "uids"} & release.granted()
        assert not [r for r in release.granted() if r.startswith("userextras/originaluser.")]
        # The proxy remembers a review's answer for 10 s: until then kube-apiserver refuses to impersonate the
        # uid and the originaluser extras (403); then it refuses the proxy's SubjectAccessReview (503).
        as_uid = AS_BOB | {"Impersonate-Uid": "1001"}
        answers = answers_until(
            "the SubjectAccessReview refused",
            lambda: api_call(through_chart, "GET", WEB_POD, alice.token, as_uid),
            lambda status: status == 503,
        )
        assert answers[-1][1]["message"] == "cannot check the impersonation right now"
        assert all(code in (403, 503) for code, _ in answers), answers
        logged(through_chart, "subjectaccessreviews.authorization.k8s.io is forbidden")
        # everything else still works
        assert api_call(through_chart, "GET", WEB_POD, alice.token)[0] == 200
    finally:
        release.restore()
    wait_until("--as works again", lambda: api_call(through_chart, "GET", WEB_POD, alice.token, AS_BOB)[0] == 200, 30)


def test_without_impersonation_the_service_account_has_no_rights(
    release: Release, through_chart: Proxy, alice: Kubectl
) -> None:
    release.upgrade(
        "disableImpersonation=true", "extraImpersonationHeaders.clientIP=false", "tokenPassthrough.enabled=false"
    )
    try:
        assert release.admin.get("clusterrole", FULLNAME) is None
        assert release.admin.get("clusterrolebinding", FULLNAME) is None
        # the proxy as it runs here still impersonates: kube-apiserver refuses it
        status, body = refused_until(
            "impersonation refused", lambda: api_call(through_chart, "GET", WEB_POD, alice.token)
        )
        assert status == 403 and 'cannot impersonate resource "users"' in body["message"]
    finally:
        release.restore()
    wait_until("impersonation works again", lambda: api_call(through_chart, "GET", WEB_POD, alice.token)[0] == 200, 30)


# -- the serving certificate on helm upgrade --------------------------------------------------------


def assert_serves(cluster: Cluster, data: dict[str, str], home: Path) -> None:
    """The proxy, serving the Secret's certificate, is trusted under the Service's name by the Secret's ca.crt
    (the TLS handshake fails otherwise)."""
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (home / key).write_bytes(base64.b64decode(data[key]))
    proxy = Proxy(cluster)
    proxy.start(f"--tls-cert-file={home / 'tls.crt'}", f"--tls-private-key-file={home / 'tls.key'}")
    try:
        ctx = ssl.create_default_context(cafile=str(home / "ca.crt"))
        with (
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=f"{FULLNAME}.{NAMESPACE}.svc") as tls,
        ):
            assert tls.version() is not None
    finally:
        proxy.stop()


def test_helm_upgrade_renews_a_certificate_near_expiry_with_the_same_ca(
    cluster: Cluster, release: Release, tmp_path: Path
) -> None:
    authority = certs.ca("kop-install-earlier-ca")
    near = certs.serving(authority, SERVICE_NAMES, days_left=10)
    release.set_tls_data(dict(certs.secret_data(near, authority)))
    notes = release.upgrade()
    expiry = near.cert.not_valid_after_utc.date().isoformat()
    assert f"This upgrade signed the certificate again: it expires on {expiry}, in under 30 days." in notes
    assert "The CA is the same as before: clients need no change." in notes
    renewed = release.tls_data()
    cert = certs.load(renewed, "tls.crt")
    assert certs.days_left(cert) > 364
    assert certs.dns_names(cert) == SERVICE_NAMES
    assert certs.signed_by(cert, authority.cert)
    assert certs.load(renewed, "ca.crt") == authority.cert
    assert_serves(cluster, renewed, tmp_path)
    # the next upgrade keeps it
    notes = release.upgrade()
    assert release.tls_data() == renewed
    assert "signed the certificate again" not in notes
    assert f"valid until {cert.not_valid_after_utc.date().isoformat()}" in notes


def test_helm_upgrade_replaces_the_go_charts_certificate_and_the_notes_print_the_ca(
    cluster: Cluster, release: Release, tmp_path: Path
) -> None:
    # what an in-place upgrade from the Go chart finds: its names only as the common name, no ca.crt
    go = certs.serving(None, [], days_left=200, common_name=SERVICE_NAMES[0])
    release.set_tls_data({**certs.secret_data(go), "ca.crt": None, "ca.key": None})
    assert "ca.crt" not in release.tls_data()
    notes = release.upgrade()
    assert "it is valid for none of the Service's names" in notes and "the Secret has no ca.crt" in notes
    assert "The CA is new: give clients this ca.crt" in notes
    [command] = [line.strip() for line in notes.splitlines() if f"get secret {TLS_SECRET}" in line]
    printed = release.admin.shell(command)
    assert printed.returncode == 0, printed.stderr
    ca_pem = (release.admin.home / "kube-oidc-proxy-ca.crt").read_bytes()
    assert ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    renewed = release.tls_data()
    assert base64.b64decode(renewed["ca.crt"]) == ca_pem
    cert = certs.load(renewed, "tls.crt")
    assert certs.dns_names(cert) == SERVICE_NAMES
    assert certs.signed_by(cert, certs.load(renewed, "ca.crt"))
    assert_serves(cluster, renewed, tmp_path)
