"""``--log-format json``: one object per answered request, with what a SIEM needs to tell who did what."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kube_oidc_proxy.config import AuditConfig, Config
from tests.conftest import ProxyHandle, start_proxy
from tests.support.certs import CertFiles
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.process import start_process
from tests.support.upstream import RecordingUpstream


async def objects(handle: ProxyHandle, count: int) -> list[dict[str, Any]]:
    for _ in range(500):
        if len(handle.access.lines) >= count:
            break
        await asyncio.sleep(0.01)
    return [json.loads(line) for line in handle.access.lines]


@pytest.fixture
async def proxy(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    settings = replace(config.proxy, log_format="json", trusted_proxy_cidrs=("127.0.0.0/8",))
    handle = await start_proxy(replace(config, proxy=settings), issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


async def test_an_authenticated_request_is_one_object_with_status_and_duration(proxy: ProxyHandle) -> None:
    response = await get(
        proxy.port, proxy.ca_file, "/slow/0.2", token=proxy.issuer.token(),
        headers=[("x-forwarded-for", "203.0.113.7, 10.0.0.9")],
    )  # fmt: skip
    assert response.status == 200
    (entry,) = await objects(proxy, 1)
    assert entry["result"] == "AuSuccess"
    assert entry["sourceIP"] == "127.0.0.1"
    assert entry["forwardedFor"] == ["203.0.113.7", "10.0.0.9"]
    assert (entry["method"], entry["uri"], entry["status"]) == ("GET", "/slow/0.2", 200)
    assert 0.2 <= entry["durationSeconds"] < 5
    assert entry["user"] == {
        "username": "alice",
        "uid": "",
        "groups": ["dev", "ops", "system:authenticated"],
        "extra": {},
    }
    assert "outbound" not in entry and "reason" not in entry
    assert entry["time"].endswith("Z")


async def test_a_refused_token_is_au_fail_with_the_reason_and_no_user(proxy: ProxyHandle) -> None:
    expired = proxy.issuer.token(exp=1)
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token=expired)).status == 401
    (entry,) = await objects(proxy, 1)
    assert (entry["result"], entry["status"], entry["uri"]) == ("AuFail", 401, "/api/v1/secrets")
    assert "expired" in entry["reason"]
    assert "user" not in entry


async def test_kubectl_as_logs_the_caller_and_the_outbound_identity(proxy: ProxyHandle) -> None:
    proxy.upstream.sar_policy = lambda spec: True
    response = await get(
        proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token(),
        headers=[("impersonate-user", "bob"), ("impersonate-group", "viewers")],
    )  # fmt: skip
    assert response.status == 200
    (entry,) = await objects(proxy, 1)
    assert entry["user"]["username"] == "alice"
    assert entry["outbound"]["username"] == "bob"
    assert entry["outbound"]["groups"] == ["viewers", "system:authenticated"]


async def test_a_caller_refused_for_as_is_au_fail_but_named(proxy: ProxyHandle) -> None:
    response = await get(
        proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token(), headers=[("impersonate-user", "root")]
    )
    assert response.status == 403
    (entry,) = await objects(proxy, 1)
    assert (entry["result"], entry["status"]) == ("AuFail", 403)
    assert entry["user"]["username"] == "alice"
    assert "outbound" not in entry


async def test_without_auditing_the_logged_id_is_the_one_kube_apiserver_was_sent(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token())
    assert response.status == 200
    (entry,) = await objects(proxy, 1)
    assert proxy.upstream.requests[-1].all("audit-id") == [entry["auditID"]] == [response.header("audit-id")]
    assert len(entry["auditID"]) == 36  # a UUID of the proxy's


@pytest.mark.parametrize(
    ("sent", "adopted"),
    [
        pytest.param([("audit-id", "trace-4bf92f3577b34da6")], True, id="well-formed"),
        pytest.param([("audit-id", "a b")], False, id="space"),
        pytest.param([("audit-id", "x" * 129)], False, id="too-long"),
        pytest.param([("audit-id", "one"), ("audit-id", "two")], False, id="two"),
        pytest.param([("audit_id", "underscore")], False, id="underscore-spelling"),
    ],
)
async def test_a_clients_audit_id_is_adopted_only_when_well_formed(
    proxy: ProxyHandle, sent: list[tuple[str, str]], adopted: bool
) -> None:
    response = await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=proxy.issuer.token(), headers=sent)
    assert response.status == 200
    (entry,) = await objects(proxy, 1)
    seen = proxy.upstream.requests[-1]
    assert [v for n, v in seen.headers if n.replace("_", "-") == "audit-id"] == [entry["auditID"]]
    assert (entry["auditID"] == sent[0][1]) is adopted


async def test_with_auditing_the_logged_id_is_the_audit_events_id(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    (tmp_path / "policy.yaml").write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
    audit = AuditConfig(policy_file=str(tmp_path / "policy.yaml"), log_path=str(tmp_path / "audit.log"))
    handle = await start_proxy(
        replace(config, audit=audit, proxy=replace(config.proxy, log_format="json")), issuer, upstream
    )
    try:
        response = await get(handle.port, handle.ca_file, "/api/v1/pods", token=issuer.token())
        (entry,) = await objects(handle, 1)
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
    audit_ids = {json.loads(line)["auditID"] for line in (tmp_path / "audit.log").read_text().splitlines()}
    assert audit_ids == {entry["auditID"]} == {response.header("audit-id")}


async def test_a_malformed_request_is_logged_without_method_or_uri(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        assert (await asyncio.wait_for(client.read_until_closed(), 5)).startswith(b"HTTP/1.1 400 ")
    finally:
        await client.close()
    (entry,) = await objects(proxy, 1)
    assert (entry["result"], entry["status"], entry["method"], entry["uri"]) == ("AuFail", 400, "-", "-")
    assert entry["reason"]


async def test_an_exec_session_is_logged_when_the_tunnel_opens(proxy: ProxyHandle) -> None:
    client = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await client.send_raw(
            (
                "POST /api/v1/namespaces/ns/pods/web/exec?command=sh HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {proxy.issuer.token()}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
            ).encode()
        )
        assert (await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101 ")
        (entry,) = await objects(proxy, 1)  # while the session is still open
    finally:
        await client.close()
    assert (entry["method"], entry["status"], entry["user"]["username"]) == ("POST", 101, "alice")


async def test_crafted_identities_cannot_break_the_line(proxy: ProxyHandle) -> None:
    # control characters are refused at authentication; quotes, braces and non-ASCII reach the log intact
    name = 'eve","result":"AuSuccess"}{"x":"\u202e'
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token(sub=name))).status == 200
    await objects(proxy, 1)
    assert len(proxy.access.lines) == 1
    assert json.loads(proxy.access.lines[0])["user"]["username"] == name


async def test_the_command_writes_json_lines_to_stdout(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> None:
    process = start_process(str(tmp_path), issuer, upstream, server_certs, "--log-format=json", env=dict(os.environ))
    try:
        process.wait_ready()
        assert (await get(process.port, process.ca_file, "/api/v1/nodes", token=issuer.token())).status == 200
        assert (await get(process.port, process.ca_file, "/api/v1/nodes", token="bad")).status == 401
        assert await asyncio.to_thread(process.stop) == 0
    finally:
        process.kill()
    entries = [json.loads(line) for line in process.stdout().splitlines()]
    assert [(e["result"], e["status"]) for e in entries] == [("AuSuccess", 200), ("AuFail", 401)]
