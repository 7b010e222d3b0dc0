"""The trust boundary against the real kube-apiserver: what it saw, read from its own audit log.

The attacks of tests/integration/test_trust_boundary.py whose harm is in how kube-apiserver (Go) reads what
the proxy sends: a request smuggled behind a framing header removed as hop-by-hop, and an identity value
that Go's HTTP server trims into a ``system:`` one. And the proxy's request info, on which its audit policy
and events rest: for hostile request targets, the proxy's audit events and kube-apiserver's own agree.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import CLIENT_ID, id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import Kubectl


def _exchange(proxy: Proxy, data: bytes) -> bytes:
    """Send raw bytes on one TLS connection and read until the proxy closes it (or 30 s)."""
    context = ssl.create_default_context(cafile=str(proxy.cluster.ca_file))
    with (
        socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(data)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def _audit_events(cluster: Cluster) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cluster.audit_log.read_text().splitlines() if line.strip()]


def _wait_for_event(cluster: Cluster, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """kube-apiserver writes its audit log asynchronously: wait for the event (the timeout is a guard)."""
    deadline = time.monotonic() + 30
    while True:
        events = _audit_events(cluster)
        if any(predicate(e) for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_a_request_smuggled_behind_connection_content_length_never_reaches_kube_apiserver(
    proxy: Proxy, cluster: Cluster, alice: Kubectl
) -> None:
    marker = uuid.uuid4().hex
    smuggled = (
        f"GET /api/v1/namespaces/e2e/secrets?smuggled={marker} HTTP/1.1\r\nHost: x\r\n"
        "Impersonate-User: system:admin\r\nImpersonate-Group: system:masters\r\nX-Padding: "
    ).encode()
    attack = (
        f"POST /api/v1/namespaces/e2e/configmaps HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {alice.token}\r\n"
        f"Content-Type: application/json\r\nConnection: keep-alive, Content-Length\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n"
    ).encode() + smuggled
    answer = _exchange(proxy, attack)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b'"kind":"Status"' in answer
    # the next request through the proxy (on whatever pooled connection) is exactly one request
    follow_up = f"/api/v1/namespaces/e2e/pods?follow-up={marker}"
    alice.run("get", "--raw", follow_up, check=True)
    events = _wait_for_event(cluster, lambda e: marker in e["requestURI"] and "follow-up" in e["requestURI"])
    seen = [e for e in events if marker in e["requestURI"]]
    assert [e["requestURI"] for e in seen] == [follow_up]
    assert seen[0]["impersonatedUser"]["username"] == "alice@example.com"
    assert not [e for e in events if e.get("impersonatedUser", {}).get("username") == "system:admin"]


def test_an_upgrade_kube_apiserver_does_not_serve_is_refused(proxy: Proxy, alice: Kubectl) -> None:
    h2c = (
        f"GET /api HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {alice.token}\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
    ).encode()
    assert _exchange(proxy, h2c).startswith(b"HTTP/1.1 400 ")


def test_a_group_go_would_trim_into_system_masters_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    # A claim mapping (or an IdP) that yields " system:masters": checked as one string, read by Go as another.
    issuer = {"url": cluster.issuer, "audiences": [CLIENT_ID], "certificateAuthority": cluster.ca_file.read_text()}
    mappings = {
        "username": {"expression": "'kc:' + claims.preferred_username"},
        "groups": {"expression": "claims.groups.map(g, 'oidc:' + g) + [' system:masters']"},
    }
    config = tmp_path / "authentication.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AuthenticationConfiguration",
                "jwt": [{"issuer": issuer, "claimMappings": mappings}],
            }
        )
    )
    proxy = Proxy(cluster)
    proxy.start(authentication_config=config)
    try:
        (tmp_path / "bob").mkdir()
        bob = Kubectl.through(proxy, id_token(cluster.issuer, cluster.ca_file, "bob", "bob-password"), tmp_path / "bob")
        refused = bob.run("get", "secrets", "-n", "kube-system")
        assert refused.returncode != 0
        assert b"You must be logged in to the server" in refused.stderr  # kubectl on a 401
        deadline = time.monotonic() + 10  # the access log is written every 50 ms; this is a guard
        while not any("AuFail" in line for line in proxy.access_lines()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("AuFail" in line for line in proxy.access_lines())
        assert not any("AuSuccess" in line for line in proxy.access_lines())
    finally:
        proxy.stop()
    as_masters = [
        e
        for e in _audit_events(cluster)
        if e.get("impersonatedUser", {}).get("username") == "kc:bob"
        and any(g.strip() == "system:masters" for g in e["impersonatedUser"].get("groups", []))
    ]
    assert as_masters == []


# Request targets an attacker spells so that a reader of the raw target and kube-apiserver disagree on what
# the request is about (and so which audit rule applies): each one sent exactly as written.
AUDITED_AS_KUBE_APISERVER_READS = [
    ("GET", "/api/v1/namespaces/e2e/pods"),
    ("GET", "/api/v1/namespaces/e2e/pods%2Fweb"),
    ("GET", "/api/v1/namespaces/e2e/configmaps%2fsettings"),
    ("GET", "/api/v1/namespaces%2Fe2e%2Fpods"),
    ("GET", "/api/v1/namespaces/e2e/pods?watch=0&watch=1"),
    ("GET", "/api/v1/namespaces/e2e/pods?watch=false&watch=true"),
    ("GET", "/api/v1/namespaces/e2e/pods?watch=FALSE"),
    ("GET", "/api/v1/namespaces/e2e/pods?watch=fal%C5%BFe"),
    ("GET", "/api/v1/namespaces/e2e/pods?watch=true;x"),
    ("GET", "/api/v1/namespaces/e2e/pods?%77atch=no&timeoutSeconds=1"),
    ("GET", "/api/v1/namespaces/e2e/pods?fieldSelector=metadata.name%3Db,metadata.name%3Da"),
    ("GET", "/api/v1/namespaces/e2e/pods?fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db"),
    ("GET", "/api/v1/namespaces/e2e/pods?fieldSelector=metadata.name===a"),
    ("GET", "/api/v1/namespaces/e2e/pods?fieldSelector=metadata.name=web&labelSelector=!!"),
    ("GET", "/api/v1/namespaces/e2e/pods?fieldSelector=metadata.name=web&limit=1_0"),
    ("GET", "/api/v1/namespaces/e2e/pods/../../kube-system/secrets"),
    ("GET", "/api/v1/namespaces/e2e/pods/%2e%2e/%2E%2E/kube-system/secrets"),
    ("GET", "/api/v1//namespaces/e2e/pods"),
    ("GET", "//api/v1/namespaces/e2e/pods"),
    ("GET", "/api/v1/namespaces//pods"),
    ("GET", "/api/v1/%77atch/namespaces/e2e/pods?timeoutSeconds=1"),
    ("GET", "/api/v1/namespaces/e2e/pods#x"),
    ("GET", '/api/v1/namespaces/e2e/pods/a"b%2Fc'),
    ("GET", "/api/v1/namespaces/caf%C3%A9/pods"),
    ("GET", "/api/v1/namespaces/%FF/pods"),
    ("GET", "/api/v1/namespaces/e2e/pods/web/log?follow=false&follow=true"),
    ("GET", "/apis/apps/v1/namespaces/e2e/deployments?watch=true&watch=false"),
    ("GET", "/healthz%2Fetcd"),
    ("HEAD", "/api/v1/namespaces/e2e/pods/web"),
    ("OPTIONS", "/api/v1/namespaces/e2e/pods"),
    ("POST", "/api/v1/watch/namespaces/e2e/pods"),
    ("DELETE", "/api/v1/namespaces/e2e/configmaps?fieldSelector=metadata.name%3Dnothing-here"),
]
OBJECT_REF_FIELDS = ("resource", "subresource", "namespace", "name", "apiGroup", "apiVersion")


def _reading(event: dict[str, Any]) -> dict[str, Any]:
    """What an audit event says the request was."""
    ref = event.get("objectRef")
    return {
        "verb": event["verb"],
        "requestURI": event["requestURI"],
        "objectRef": None if ref is None else {key: ref.get(key, "") for key in OBJECT_REF_FIELDS},
    }


def test_the_proxys_audit_events_read_each_hostile_target_as_kube_apiservers_own_audit_log_does(
    cluster: Cluster, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules: [{level: Metadata}]\n"
    )
    log = tmp_path / "audit.log"
    audited = Proxy(cluster)
    audited.start(f"--audit-policy-file={policy}", f"--audit-log-path={log}")
    token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
    ids = {str(uuid.uuid4()): request for request in AUDITED_AS_KUBE_APISERVER_READS}
    try:
        for audit_id, (method, target) in ids.items():
            try:
                answer = _exchange(
                    audited,
                    f"{method} {target} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {token}\r\n"
                    f"Audit-ID: {audit_id}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode(),
                )
            except TimeoutError:
                raise AssertionError(f"no end to {method} {target} within 30 s") from None
            assert answer.startswith(b"HTTP/1.1 "), (target, answer[:100])
    finally:
        audited.stop()
    ours = {e["auditID"]: _reading(e) for e in (json.loads(ln) for ln in log.read_text().splitlines() if ln)}
    last_id = list(ids)[-1]
    _wait_for_event(cluster, lambda e: e["auditID"] == last_id)
    theirs = {e["auditID"]: _reading(e) for e in _audit_events(cluster) if e["auditID"] in ids}
    assert set(ours) == set(theirs) == set(ids)
    disagreements = {ids[i]: (ours[i], theirs[i]) for i in ids if ours[i] != theirs[i]}
    assert disagreements == {}


def test_a_path_kube_apiserver_cannot_decode_is_refused_by_the_proxy_as_by_kube_apiserver(
    proxy: Proxy, cluster: Cluster, alice: Kubectl
) -> None:
    for target in ("/api/v1/namespaces/e2e/pods%zz", "/api/v1/namespaces/e2e/pods%", "/api/v1/pods%2?watch=1"):
        request = (
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice.token}\r\nConnection: close\r\n\r\n"
        )
        # kube-apiserver's HTTP server refuses it before any handler (Go's url.ParseRequestURI) ...
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        with (
            socket.create_connection(("127.0.0.1", cluster.api_port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(request.encode())
            direct = b""
            while chunk := tls.recv(65536):
                direct += chunk
        assert direct.startswith(b"HTTP/1.1 400 "), direct[:200]
        # ... and the proxy refuses it too, with its own Status, instead of forwarding it (and auditing it)
        answer = _exchange(proxy, request.encode())
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"kind":"Status"' in answer, answer[:300]
