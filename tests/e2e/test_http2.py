"""HTTP/2 from clients, end to end: real kubectl, curl and a client-go controller talk to the proxy as they
talk to kube-apiserver, and negotiate h2 (ALPN) by default.

Each test asserts the protocol the proxy serves (``proxy.http2``), so ``test_http1_serving.py`` runs the
same tests again against proxies started with ``--disable-http2-serving``, where the answer is HTTP/1.1.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import helpers
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import HTTP2_DEBUG, Kubectl, spoke_http2
from tests.e2e.sockets import established

INFORMERS = 30
GUARD_SECONDS = 60  # a bound on waits for something that takes well under a second


def test_kubectl_negotiates_http2_when_the_proxy_offers_it(alice: Kubectl, proxy: Proxy) -> None:
    listed = alice.run("get", "pods", "-o", "name", env=HTTP2_DEBUG, check=True)
    assert b"pod/web" in listed.stdout
    assert spoke_http2(listed, proxy) is proxy.http2, listed.stderr.decode(errors="replace")[-3000:]


def test_exec_upgrades_over_http1_beside_http2_requests(alice: Kubectl, proxy: Proxy) -> None:
    # kubectl reads the pod over HTTP/2, then dials the exec stream itself, offering only http/1.1 (the
    # proxy answers an upgrade on an HTTP/2 stream with a Status: the exec working shows it did not try).
    command = ("sh", "-c", "cat; exit 5")
    result = alice.run("exec", "-i", "web", "-v=4", "--", *command, stdin=b"beside h2\n", env=HTTP2_DEBUG)
    assert result.returncode == 5, result.stderr.decode(errors="replace")[-3000:]
    assert result.stdout == b"beside h2\n"
    assert b"RemoteCommand fallback" not in result.stderr
    assert spoke_http2(result, proxy) is proxy.http2


def _curl(proxy: Proxy, token: str, method: str, path: str, body: Any = None) -> tuple[str, int, dict[str, Any]]:
    """curl --http2 (HTTP/2 if the proxy offers it, else HTTP/1.1): the HTTP version, status and JSON body."""
    data = ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)] if body is not None else []
    result = subprocess.run(
        ["curl", "--http2", "-sS", "--cacert", str(proxy.cluster.ca_file), "-X", method,
         "-H", f"Authorization: Bearer {token}", *data, "-w", r"\n%{http_version} %{http_code}", proxy.url + path],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    answer, _, written = result.stdout.decode().rpartition("\n")
    version, code = written.split()
    return version, int(code), json.loads(answer)


def test_curl_with_http2_enabled(proxy: Proxy, alice: Kubectl, bob: Kubectl) -> None:
    expected = "2" if proxy.http2 else "1.1"
    version, code, pod = _curl(proxy, alice.token, "GET", "/api/v1/namespaces/e2e/pods/web")
    assert (version, code, pod["metadata"]["name"]) == (expected, 200, "web")
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-curl"}, "data": {"k": "v" * 100_000}}
    version, code, created = _curl(proxy, alice.token, "POST", "/api/v1/namespaces/e2e/configmaps", configmap)
    assert (version, code, created["data"]) == (expected, 201, configmap["data"])
    version, code, deleted = _curl(proxy, alice.token, "DELETE", "/api/v1/namespaces/e2e/configmaps/by-curl")
    assert (version, code, deleted["status"]) == (expected, 200, "Success")
    version, code, denied = _curl(proxy, bob.token, "GET", "/api/v1/namespaces/e2e/configmaps")
    assert (version, code, denied["reason"]) == (expected, 403, "Forbidden")
    version, code, refused = _curl(proxy, "not-a-token", "GET", "/api/v1/namespaces/e2e/pods")
    assert (version, code, refused["reason"]) == (expected, 401, "Unauthorized")


def test_a_passed_through_token_works_for_kubectl(cluster: Cluster, tmp_path: Path) -> None:
    # the Go e2e "passthrough" case with kubectl: a service account's own token, judged by kube-apiserver
    api = cluster.api()
    api.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci-kubectl", "namespace": "e2e"}})
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "ci-kubectl-viewer", "namespace": "e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "ci-kubectl", "namespace": "e2e"}],
        }
    )
    passthrough = Proxy(cluster)
    passthrough.start("--token-passthrough")
    try:
        kubectl = Kubectl.through(passthrough, api.token("e2e", "ci-kubectl"), tmp_path)
        got = kubectl.run("get", "pod", "web", "-o", "name", env=HTTP2_DEBUG, check=True)
        assert got.stdout.strip() == b"pod/web"
        assert spoke_http2(got, passthrough) is passthrough.http2
        denied = kubectl.run("get", "secrets")
        assert b'User "system:serviceaccount:e2e:ci-kubectl" cannot list resource "secrets"' in denied.stderr
    finally:
        passthrough.stop()


@pytest.fixture(scope="module")
def watch_everything(cluster: Cluster) -> Iterator[None]:
    """alice may list and watch every resource in the namespace (for the informers), for this module only:
    other modules count on what she may not do (a watch she may not open ends at once, one she may never
    does)."""
    api = cluster.api()
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "watch-everything", "namespace": "e2e"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "watch"]}],
        }
    )
    api.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-watches-everything", "namespace": "e2e"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "watch-everything"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}],
        }
    )
    yield
    api.request("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/e2e/rolebindings/alice-watches-everything")
    api.request("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/e2e/roles/watch-everything")


@dataclass
class Informers:
    process: subprocess.Popen[str]

    def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], GUARD_SECONDS)
        assert ready, "the informers helper said nothing"
        line = self.process.stdout.readline()
        assert line, f"the informers helper ended: {self.process.stderr.read() if self.process.stderr else ''}"
        return dict(json.loads(line))

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """Closing stdin stops the informers."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(GUARD_SECONDS) == 0


@pytest.fixture
def informers(alice: Kubectl, tmp_path: Path) -> Iterator[Any]:
    """Starts the client-go informers helper with alice's kubeconfig for a proxy."""
    started: list[subprocess.Popen[str]] = []

    def start(proxy: Proxy) -> Informers:
        kubeconfig = Kubectl.through(proxy, alice.token, tmp_path).kubeconfig
        process = subprocess.Popen(
            [str(helpers.informers()), f"-kubeconfig={kubeconfig}", "-namespace=e2e", f"-max={INFORMERS}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(process)
        return Informers(process)

    yield start
    for process in started:
        process.kill()
        process.wait()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in the metrics")


def _wait_for_metric(port: int, name: str, value: float) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while (seen := _metric(port, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, not {value}"
        time.sleep(0.1)


def test_informers_watch_over_one_client_connection_with_http2_and_one_upstream_either_way(
    cluster: Cluster, informers: Any, watch_everything: None
) -> None:
    proxy = Proxy(cluster)
    metrics_port = proxy.ports.take()
    proxy.start(f"--metrics-bind-address=127.0.0.1:{metrics_port}")
    try:
        helper: Informers = informers(proxy)
        resources = helper.line()["resources"]  # discovery is done
        assert len(resources) == INFORMERS, resources
        upstream_before = set(established(proxy.pid, remote_port=cluster.api_port))
        helper.go_on()
        report = helper.line()
        assert report["synced"] is True and report["informers"] == INFORMERS, report
        to_proxy = established(helper.process.pid, remote_port=proxy.port)
        accepted = established(proxy.pid, local_port=proxy.port)
        if proxy.http2:
            # client-go's own count of the connections it dialled, the kernel's, and the proxy's agree: one
            assert report["dials"] == 1 and len(to_proxy) == 1 and len(accepted) == 1, (report, to_proxy, accepted)
            assert set(report["protocols"]) == {"HTTP/2.0"}, report
            _wait_for_metric(metrics_port, "kube_oidc_proxy_open_connections", 1)
        else:
            # over HTTP/1.1 every watch holds a connection of its own
            assert report["dials"] >= INFORMERS and len(to_proxy) >= INFORMERS, (report, to_proxy)
            assert set(report["protocols"]) == {"HTTP/1.1"}, report
        _wait_for_metric(metrics_port, "kube_oidc_proxy_active_watches", INFORMERS)
        # upstream, all the watches share one new HTTP/2 connection to kube-apiserver, whichever way they came
        opened = set(established(proxy.pid, remote_port=cluster.api_port)) - upstream_before
        assert len(opened) == 1, (upstream_before, opened)
        helper.stop()
        _wait_for_metric(metrics_port, "kube_oidc_proxy_active_watches", 0)
    finally:
        proxy.stop()
