"""Audit events through the proxy: the log backend (JSON and legacy, rotation) and the webhook backend."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kube_oidc_proxy.config import AuditBatchConfig, AuditConfig, Config
from tests.conftest import ProxyHandle, start_proxy
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

METADATA = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def audited_proxy(
    tmp_path: Path,
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    policy: str = METADATA,
    **audit: Any,
) -> ProxyHandle:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy)
    settings = AuditConfig(policy_file=str(policy_file), **{"log_path": str(tmp_path / "audit.log"), **audit})
    return await start_proxy(replace(config, audit=settings), issuer, upstream)


async def test_a_request_is_audited_with_the_oidc_user_and_one_audit_id(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    behind_a_load_balancer = replace(config, proxy=replace(config.proxy, trusted_proxy_cidrs=("127.0.0.1/32",)))
    handle = await audited_proxy(tmp_path, behind_a_load_balancer, issuer, upstream)
    try:
        response = await get(
            handle.port, handle.ca_file, "/api/v1/namespaces/ns/pods/web", token=issuer.token(),
            headers=[("user-agent", "kubectl/v1.32"), ("x-forwarded-for", "203.0.113.7")],
        )  # fmt: skip
        assert response.status == 200
    finally:
        await handle.running.stop(grace=1)
    received, complete = events(tmp_path / "audit.log")
    assert (received["stage"], complete["stage"]) == ("RequestReceived", "ResponseComplete")
    assert received["auditID"] == complete["auditID"] == response.header("audit-id")
    assert upstream.requests[-1].one("audit-id") == received["auditID"]
    assert complete["level"] == "Metadata" and complete["verb"] == "get"
    assert complete["user"] == {"username": "alice", "groups": ["dev", "ops", "system:authenticated"]}
    assert complete["objectRef"] == {"resource": "pods", "namespace": "ns", "name": "web", "apiVersion": "v1"}
    assert complete["sourceIPs"] == ["203.0.113.7", "127.0.0.1"]
    assert complete["userAgent"] == "kubectl/v1.32"
    assert complete["responseStatus"] == {"metadata": {}, "code": 200}
    assert "responseStatus" not in received and "requestObject" not in complete


async def test_blocking_mode_writes_the_event_before_the_request_goes_on(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await audited_proxy(tmp_path, config, issuer, upstream)  # --audit-log-mode defaults to blocking
    try:
        response = await get(handle.port, handle.ca_file, "/api/v1/pods", token=issuer.token())
        # read while the proxy runs: RequestReceived was written before kube-apiserver saw the request
        stages = [e["stage"] for e in events(tmp_path / "audit.log")]
        assert stages[0] == "RequestReceived" and response.status == 200
        for _ in range(100):
            if len(stages) == 2:
                break
            await asyncio.sleep(0.01)
            stages = [e["stage"] for e in events(tmp_path / "audit.log")]
        assert stages == ["RequestReceived", "ResponseComplete"]
    finally:
        await handle.running.stop(grace=1)


async def test_the_go_proxy_audit_case(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    # ported from the Go proxy's e2e "audit" case: a valid request that RBAC denies, and one with token "foo"
    handle = await audited_proxy(
        tmp_path, config, issuer, upstream, policy=METADATA.replace("Metadata", "RequestResponse")
    )
    try:
        assert (await get(handle.port, handle.ca_file, "/status/403", token=issuer.token())).status == 403
        assert (await get(handle.port, handle.ca_file, "/api/v1/pods", token="foo")).status == 401
    finally:
        await handle.running.stop(grace=1)
    stages = [
        (e["stage"], e.get("responseStatus", {}).get("code"), e["user"].get("username"))
        for e in events(tmp_path / "audit.log")
    ]
    assert stages == [
        ("RequestReceived", None, "alice"),
        ("ResponseComplete", 403, "alice"),
        ("ResponseStarted", 401, None),
    ]
    failed = events(tmp_path / "audit.log")[-1]
    assert failed["responseStatus"]["reason"] == "Unauthorized"


async def test_an_audit_rule_catches_the_request_kube_apiserver_serves_however_the_attacker_spells_it(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    # Rules for exactly what an attacker wants unseen: reading one secret, listing secrets. Anything else
    # is not audited, so a request the proxy reads as something else leaves no event at all.
    policy = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
        "  - level: Metadata\n    verbs: [get]\n"
        "    resources: [{group: '', resources: [secrets], resourceNames: [db-password]}]\n"
        "  - level: Metadata\n    verbs: [list]\n    resources: [{group: '', resources: [secrets]}]\n"
        "  - level: None\n"
    )
    handle = await audited_proxy(tmp_path, config, issuer, upstream, policy=policy)
    attacks = {
        # kube-apiserver decodes the path before splitting it: secrets, named db-password
        "/api/v1/namespaces/ns/secrets%2Fdb-password": ("get", "db-password"),
        # ... and takes the first of repeated parameters: a list, not a watch
        "/api/v1/namespaces/ns/secrets?watch=0&watch=1": ("list", None),
        # ... and reads an escaped parameter name as the name
        "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3Ddb-password&%77atch=0": ("list", "db-password"),
    }
    try:
        for target in attacks:
            assert (await get(handle.port, handle.ca_file, target, token=issuer.token())).status == 200
    finally:
        await handle.running.stop(grace=1)
    audited = {e["requestURI"]: (e["verb"], e["objectRef"].get("name")) for e in events(tmp_path / "audit.log")}
    assert audited == attacks
    assert [r.target for r in upstream.requests if r.target.startswith("/api/")] == list(attacks)


async def test_request_response_level_keeps_bodies_and_impersonation_is_recorded(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    policy = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nomitManagedFields: true\n"
        "rules:\n  - level: RequestResponse\n"
    )
    handle = await audited_proxy(tmp_path, config, issuer, upstream, policy=policy)
    upstream.sar_policy = lambda spec: True
    try:
        body = json.dumps({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [{"x": 1}]}}).encode()
        client = await Client.connect(handle.port, handle.ca_file)
        response = await client.request(
            "POST",
            "/echo-body",
            body=body,
            token=issuer.token(),
            headers=[("impersonate-user", "bob"), ("content-type", "application/json")],
        )
        await client.close()
        assert response.status == 200
    finally:
        await handle.running.stop(grace=1)
    (complete,) = events(tmp_path / "audit.log")
    assert complete["impersonatedUser"]["username"] == "bob"
    assert complete["user"]["username"] == "alice"
    assert complete["requestObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"}}
    assert complete["responseObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"}}


async def test_a_body_kube_apiserver_reads_with_replacement_characters_is_recorded_as_it_reads_it(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    # Go's JSON decoder reads an escaped lone surrogate and bytes that are not UTF-8 as U+FFFD: kube-apiserver
    # acts on such a body, so its record must not be dropped (it was: the strict parser refused it).
    policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Request\n"
    handle = await audited_proxy(tmp_path, config, issuer, upstream, policy=policy)
    body = b'{"kind":"ClusterRoleBinding","metadata":{"name":"b","annotations":{"x":"\\ud800","y":"\xff"}}}'
    try:
        client = await Client.connect(handle.port, handle.ca_file)
        response = await client.request(
            "POST", "/echo-body", body=body, token=issuer.token(), headers=[("content-type", "application/json")]
        )
        await client.close()
        assert response.status == 200
    finally:
        await handle.running.stop(grace=1)
    (complete,) = events(tmp_path / "audit.log")
    assert complete["requestObject"]["metadata"]["annotations"] == {"x": "\ufffd", "y": "\ufffd"}


async def test_the_legacy_format(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await audited_proxy(tmp_path, config, issuer, upstream, log_format="legacy")
    try:
        await get(handle.port, handle.ca_file, "/api/v1/namespaces/ns/pods", token=issuer.token())
    finally:
        await handle.running.stop(grace=1)
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 2
    assert ' AUDIT: id="' in lines[1]
    assert 'stage="ResponseComplete" ip="127.0.0.1" method="list" user="alice"' in lines[1]
    assert (
        'as="<self>" asgroups="<lookup>"' in lines[1] and 'namespace="ns"' in lines[1] and 'response="200"' in lines[1]
    )


async def test_the_log_rotates_and_compresses(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    handle = await audited_proxy(
        tmp_path, config, issuer, upstream, log_max_size=1, log_max_backup=2, log_compress=True
    )
    token = issuer.token(padding="p" * 3000)  # fat events
    try:
        client = await Client.connect(handle.port, handle.ca_file)
        for i in range(400):
            await client.request("GET", f"/api/v1/namespaces/ns/pods/p{i}?x={'y' * 2000}", token=token)
        await client.close()
    finally:
        await handle.running.stop(grace=1)
    backups = sorted(tmp_path.glob("audit-*.log.gz"))
    assert 1 <= len(backups) <= 2
    with gzip.open(backups[-1]) as f:
        assert json.loads(f.readline())["kind"] == "Event"
    assert (tmp_path / "audit.log").stat().st_size <= 1024 * 1024


class Sink:
    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.batches.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audit"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for b in self.batches for e in b["items"]]


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.server.shutdown()


async def test_the_webhook_receives_event_lists_in_batches(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream, sink: Sink
) -> None:
    hook = tmp_path / "webhook.kubeconfig"
    hook.write_text(
        f"apiVersion: v1\nkind: Config\nclusters: [{{name: sink, cluster: {{server: '{sink.url}'}}}}]\n"
        "users: [{name: sink, user: {}}]\ncurrent-context: sink\n"
        "contexts: [{name: sink, context: {cluster: sink, user: sink}}]\n"
    )
    handle = await audited_proxy(
        tmp_path, config, issuer, upstream,
        log_path="", webhook_config_file=str(hook),
        webhook_batch=AuditBatchConfig(buffer_size=100, max_size=10, max_wait=0.2),
    )  # fmt: skip
    try:
        for i in range(5):
            await get(handle.port, handle.ca_file, f"/api/v1/pods?i={i}", token=issuer.token())
        for _ in range(100):
            if len(sink.events) == 10:
                break
            await asyncio.sleep(0.05)
    finally:
        await handle.running.stop(grace=1)
    assert len(sink.events) == 10
    assert all(b["kind"] == "EventList" and b["apiVersion"] == "audit.k8s.io/v1" for b in sink.batches)
    assert len(sink.batches) < 10  # batched, not one POST per event
    assert {e["user"]["username"] for e in sink.events} == {"alice"}
