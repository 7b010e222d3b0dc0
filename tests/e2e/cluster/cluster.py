"""A real control plane on loopback: etcd → kube-apiserver → fakelet, plus Keycloak as the OIDC provider.

``Cluster.start()`` makes certificates, starts the processes (Keycloak in parallel with the control plane,
it is the slowest), registers a Node pointing at the fakelet and Running Pods bound to it, creates the
users' RBAC and the proxy's ServiceAccount and ClusterRole (deploy/rbac.yaml). ``stop()`` ends every
process, also when a test failed. Everything lives in one work directory: certificates, logs, the audit log.
"""

from __future__ import annotations

import json
import signal
import ssl
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster import build
from tests.e2e.cluster.pki import CertificateAuthority, Pair, service_account_keys
from tests.e2e.cluster.processes import Process, https_ok, wait_until
from tests.support.ports import PortHolder

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "e2e"
PROXY_NAMESPACE = "kube-oidc-proxy"
NODE = "fake-node"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KEYCLOAK_ADMIN = ("kop-admin", "kop-admin-password")

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""

USERS = {"alice": "alice-password", "bob": "bob-password"}


@dataclass
class Cluster:
    workdir: Path
    binaries: build.Binaries
    processes: list[Process] = field(default_factory=list)
    api_port: int = 0
    keycloak_port: int = 0
    fakelet_port: int = 0
    ca: CertificateAuthority | None = None
    ports: PortHolder = field(default_factory=PortHolder)  # every port of the cluster, held until stop()

    # -- addresses and credentials ----------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        assert self.ca is not None
        return self.ca.cert

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.keycloak_port}/realms/kube"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    @property
    def containers(self) -> Path:
        return self.workdir / "containers"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.ca = ca = CertificateAuthority(self.workdir / "pki")
        self.keycloak_port = self.ports.take()
        keycloak_tls = ca.serving("keycloak")
        keycloak = self._start_keycloak(keycloak_tls, logs)

        etcd = self._start_etcd(logs)
        apiserver = self._start_apiserver(ca, logs, etcd)
        self._write_admin_kubeconfig(ca)
        self._start_fakelet(ca, logs)
        self._register_node_and_pods()
        build.say(f"control plane up in {time.monotonic() - started:.1f}s")
        wait_until(
            "Keycloak",
            lambda: https_ok(f"{self.issuer}/.well-known/openid-configuration", ca.cert),
            120,
            keycloak,
        )
        del apiserver
        build.say(f"cluster and OIDC provider up in {time.monotonic() - started:.1f}s (work dir {self.workdir})")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.ports.close()

    # -- faults (for the drills) ------------------------------------------------------------------

    @property
    def apiserver(self) -> Process:
        return next(p for p in self.processes if p.name == "kube-apiserver")

    def kill_apiserver(self, sig: signal.Signals = signal.SIGKILL) -> str:
        """End kube-apiserver (SIGKILL: at once, mid-response; SIGTERM: its graceful shutdown, SIGKILL after
        10 s) and wait until it has exited; how it ended, for a drill's figure. Its port stays reserved by
        ``ports``: nothing else gets the number meanwhile."""
        if self.apiserver.kill(sig) or sig == signal.SIGKILL:
            return sig.name
        return f"{sig.name} (still running 10 s later: SIGKILL)"

    def start_apiserver_again(self, timeout: float = 90) -> None:
        """kube-apiserver on the same port with the same arguments (etcd kept everything), until /readyz is 200."""
        apiserver = self.apiserver
        apiserver.start_again()
        wait_until("kube-apiserver", lambda: https_ok(f"{self.server}/readyz", self.ca_file), timeout, apiserver)

    # -- processes --------------------------------------------------------------------------------

    def _start_etcd(self, logs: Path) -> str:
        client, peer = self.ports.take(), self.ports.take()
        url = f"http://127.0.0.1:{client}"
        etcd = Process(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            logs,
        )
        self.processes.append(etcd)
        wait_until("etcd", lambda: _http_ok(f"{url}/health"), 30, etcd)
        return url

    def _start_apiserver(self, ca: CertificateAuthority, logs: Path, etcd_url: str) -> Process:
        self.api_port = self.ports.take()
        serving = ca.serving("kube-apiserver", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
        kubelet_client = ca.issue(
            "apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organizations=("system:masters",),
            client=True,
        )
        sa = service_account_keys(self.workdir / "pki")
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        apiserver = Process(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--api-audiences={SA_ISSUER}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={ca.cert}",
                "--enable-priority-and-fairness=false",
            ],
            logs,
        )
        self.processes.append(apiserver)
        wait_until("kube-apiserver", lambda: https_ok(f"{self.server}/readyz", ca.cert), 90, apiserver)
        return apiserver

    def _write_admin_kubeconfig(self, ca: CertificateAuthority) -> None:
        admin = ca.issue("admin", common_name="e2e-admin", organizations=("system:masters",), client=True)
        self.admin_kubeconfig.write_text(
            kubeconfig(self.server, ca.cert, user={"client-certificate": str(admin.cert), "client-key": str(admin.key)})
        )

    def _start_fakelet(self, ca: CertificateAuthority, logs: Path) -> None:
        tls = ca.serving("fakelet")
        self.containers.mkdir(exist_ok=True)
        fakelet = Process(
            "fakelet",
            [str(self.binaries.fakelet), "-cert", str(tls.cert), "-key", str(tls.key), "-root", str(self.containers)],
            logs,
        )
        self.processes.append(fakelet)
        wait_until("fakelet", lambda: _first_line(fakelet.log_path).isdigit(), 15, fakelet)
        self.fakelet_port = int(_first_line(fakelet.log_path))

    def _start_keycloak(self, tls: Pair, logs: Path) -> Process:
        home = self.binaries.keycloak
        keycloak = Process(
            "keycloak",
            [
                str(home / "bin" / "kc.sh"),
                "start",
                "--optimized",
                "--import-realm",
                f"--https-port={self.keycloak_port}",
                "--http-enabled=false",
                f"--http-management-port={self.ports.take()}",
                f"--https-certificate-file={tls.cert}",
                f"--https-certificate-key-file={tls.key}",
                "--hostname-strict=false",
            ],
            logs,
            env={
                "JAVA_HOME": str(self.binaries.java_home),
                # An administrator of the in-memory master realm, for drills that change the IdP's keys.
                "KC_BOOTSTRAP_ADMIN_USERNAME": KEYCLOAK_ADMIN[0],
                "KC_BOOTSTRAP_ADMIN_PASSWORD": KEYCLOAK_ADMIN[1],
            },
            stop_timeout=2,  # its orderly shutdown takes ~30 s; a test IdP has nothing to save
        )
        self.processes.append(keycloak)
        return keycloak

    # -- objects ----------------------------------------------------------------------------------

    def _register_node_and_pods(self) -> None:
        api = self.api()
        api.apply(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}},
        )
        api.patch_status(
            "/api/v1/nodes/" + NODE,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": self.fakelet_port}},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "FakeletReady", "message": "fake"}],
                }
            },
        )
        for namespace in (NAMESPACE, PROXY_NAMESPACE):
            api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for name in ("web", "db"):
            api.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
                    "spec": {
                        "nodeName": NODE,
                        "terminationGracePeriodSeconds": 0,
                        "automountServiceAccountToken": False,
                        "containers": [{"name": "main", "image": "fake", "stdin": True}],
                    },
                }
            )
            api.patch_status(
                f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
                {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            )
        for document in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()):
            api.apply(document)
        for document in yaml.safe_load_all((Path(__file__).parent / "users-rbac.yaml").read_text()):
            api.apply(document)

    def api(self) -> AdminClient:
        return AdminClient(
            self.server, self.ca_file, self.workdir / "pki" / "admin.crt", self.workdir / "pki" / "admin.key"
        )


def kubeconfig(server: str, ca_file: Path, *, user: dict[str, Any], namespace: str = "") -> str:
    context: dict[str, Any] = {"cluster": "e2e", "user": "user"}
    if namespace:
        context["namespace"] = namespace
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "e2e", "context": context}],
            "current-context": "e2e",
        }
    )


def _first_line(path: Path) -> str:
    return path.read_text().strip().split("\n")[0]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


class AdminClient:
    """Just enough of a Kubernetes client for the harness's own setup (server-side apply, status patches)."""

    def __init__(self, server: str, ca_file: Path, cert: Path, key: Path) -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self.ctx.load_cert_chain(str(cert), str(key))

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def apply(self, obj: dict[str, Any]) -> Any:
        path = _object_path(obj)
        query = urllib.parse.urlencode({"fieldManager": "e2e-harness", "force": "true"})
        return self.request("PATCH", f"{path}?{query}", obj, "application/apply-patch+yaml")

    def patch_status(self, path: str, patch: dict[str, Any]) -> Any:
        return self.request("PATCH", f"{path}/status", patch, "application/merge-patch+json")

    def token(self, namespace: str, service_account: str, seconds: int = 600, audience: str = SA_ISSUER) -> str:
        review = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [audience], "expirationSeconds": seconds},
            },
        )
        return str(review["status"]["token"])


_PLURALS = {
    "Node": "nodes", "Namespace": "namespaces", "Pod": "pods", "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles", "RoleBinding": "rolebindings",
}  # fmt: skip


def _object_path(obj: dict[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{scope}/{_PLURALS[kind]}/{obj['metadata']['name']}"
