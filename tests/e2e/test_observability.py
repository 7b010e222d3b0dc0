"""Audit events, metrics and JSON access lines for real kubectl traffic through the proxy, against the real
kube-apiserver. Includes the Go proxy's e2e "audit" case (log backend and webhook backend)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import Kubectl, api_call
from tests.e2e.test_identity import _audit_events

Event = dict[str, Any]


@dataclass
class AuditSink:
    """An audit webhook (the Go e2e's audit-webhook tool): keeps every event of every EventList posted."""

    events: list[Event] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert body["kind"] == "EventList" and body["apiVersion"] == "audit.k8s.io/v1"
                sink.events += body["items"]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/audit"

    def wait_for(self, predicate: Callable[[Event], bool], count: int = 1, timeout: float = 15) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in list(self.events) if predicate(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def _webhook_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        f"apiVersion: v1\nkind: Config\nclusters: [{{name: sink, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: sink, user: {}}]\ncurrent-context: sink\n"
        "contexts: [{name: sink, context: {cluster: sink, user: sink}}]\n"
    )
    return path


@pytest.fixture
def sink() -> Iterator[AuditSink]:
    s = AuditSink()
    yield s
    if s.server is not None:
        s.server.shutdown()


def _read_events(path: Path) -> list[Event]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_go_proxy_audit_case(cluster: Cluster, sink: AuditSink, tmp_path: Path) -> None:
    # J/T test/e2e/suite/cases/audit: RequestResponse policy, log and webhook backends; a request RBAC
    # refuses, then one with the token "foo". Expected: RequestReceived -> ResponseComplete 403 -> 401.
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n")
    log = tmp_path / "audit.log"
    audited = Proxy(cluster)
    audited.start(
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log}",
        f"--audit-webhook-config-file={_webhook_kubeconfig(tmp_path / 'hook', sink.start())}",
        "--audit-webhook-initial-backoff=1s",
        "--audit-webhook-batch-max-wait=1s",
    )
    try:
        token = id_token(cluster.issuer, cluster.ca_file, "bob", "bob-password")
        status, _ = api_call(audited, "GET", "/api/v1/namespaces/e2e/secrets", token)
        assert status == 403  # bob is a viewer: kube-apiserver's RBAC says no
        status, body = api_call(audited, "GET", "/api/v1/namespaces/e2e/secrets", "foo")
        assert status == 401 and body["kind"] == "Status"
        from_webhook = sink.wait_for(lambda e: True, count=3)
    finally:
        audited.stop()
    for events in (_read_events(log), from_webhook):
        stages = [(e["stage"], e.get("responseStatus", {}).get("code"), e["user"].get("username")) for e in events]
        assert stages == [
            ("RequestReceived", None, "bob@example.com"),
            ("ResponseComplete", 403, "bob@example.com"),
            ("ResponseStarted", 401, None),
        ]
        received = events[0]
        assert received["user"]["groups"] == ["oidc:viewers", "system:authenticated"]
        # unlike the Go proxy, /api/v1 is a resource request: the verb is list, the object is named
        assert received["verb"] == "list"
        assert received["objectRef"] == {"resource": "secrets", "namespace": "e2e", "apiVersion": "v1"}
        assert events[1]["responseObject"]["reason"] == "Forbidden"  # RequestResponse keeps the body


def test_kubectl_traffic_reaches_the_audit_webhook_with_kube_apiservers_audit_id(
    cluster: Cluster, sink: AuditSink, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules: [{level: Metadata}]\n"
    )
    audited = Proxy(cluster)
    metrics_port = audited.ports.take()
    audited.start(
        f"--audit-policy-file={policy}",
        f"--audit-webhook-config-file={_webhook_kubeconfig(tmp_path / 'hook', sink.start())}",
        "--audit-webhook-batch-max-wait=0.5s",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        "--log-format=json",
    )
    try:
        token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        alice = Kubectl.through(audited, token, tmp_path)
        assert alice.run("get", "pods", check=True).returncode == 0
        assert alice.run("get", "pod", "web", "-o", "name", check=True).stdout.strip() == b"pod/web"
        events = sink.wait_for(lambda e: e.get("objectRef", {}).get("resource") == "pods", count=2)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
    finally:
        audited.stop()
    by_verb = {e["verb"]: e for e in events}
    assert set(by_verb) >= {"list", "get"}
    for event in by_verb.values():
        assert event["user"]["username"] == "alice@example.com"
        assert event["userAgent"].startswith("kubectl/")
        assert event["responseStatus"]["code"] == 200
    assert by_verb["get"]["objectRef"]["name"] == "web"
    # the proxy's audit ID is the one kube-apiserver records, so the two audit logs join on it
    for event in by_verb.values():
        upstream = _audit_events(cluster, lambda e, audit_id=event["auditID"]: e["auditID"] == audit_id)
        assert upstream and upstream[0]["impersonatedUser"]["username"] == "alice@example.com"
    # the JSON access lines carry the same ID
    assert audited.process is not None
    lines = [json.loads(ln) for ln in audited.process.log_path.read_text().splitlines() if ln.startswith("{")]
    assert {e["auditID"] for e in by_verb.values()} <= {ln["auditID"] for ln in lines}
    # kubectl offers h2 first: its ordinary requests come over HTTP/2 (unless the proxy serves HTTP/1.1 only)
    protocol = "HTTP/2" if audited.http2 else "HTTP/1.1"
    assert f'kube_oidc_proxy_http_requests_total{{code="200",protocol="{protocol}",verb="list"}}' in metrics
    assert f'kube_oidc_proxy_http_requests_total{{code="200",protocol="{protocol}",verb="get"}}' in metrics
    assert {ln.get("protocol") for ln in lines if ln.get("status") == 200} == {protocol}
