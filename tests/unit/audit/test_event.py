"""rfc3339 and audit.event: the fast timestamp and audit-ID helpers say exactly what the slow standard ones would."""

from __future__ import annotations

import datetime
import json
import os
import random
import uuid
from typing import Any

import orjson
import pytest

from kube_oidc_proxy.audit.event import (
    USER_MEMO_BYTES,
    USER_MEMO_SIZE,
    AuditRecord,
    UserMemo,
    new_audit_id,
    to_legacy_line,
    user_info,
)
from kube_oidc_proxy.audit.policy import Decision, Level
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.rfc3339 import timestamp


@pytest.mark.parametrize(
    "unix",
    [0.0, 1_000_000_000.999999, 1_764_403_200.5, 1_764_403_200.000001, 1_764_403_200.9999996, 1_764_403_199.9999999],
)
def test_timestamps_match_datetime_including_its_rounding(unix: float) -> None:
    assert timestamp(unix) == datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_timestamps_match_datetime_over_many_random_times() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        unix = rng.uniform(1.7e9, 1.8e9)
        assert timestamp(unix) == datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_audit_ids_are_distinct_random_uuids() -> None:
    ids = [new_audit_id() for _ in range(2_000)]  # several refills of the randomness pool
    assert len(set(ids)) == len(ids)
    for audit_id in ids:
        parsed = uuid.UUID(audit_id)
        assert str(parsed) == audit_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    new_audit_id()  # the pool now holds randomness for 255 more IDs
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_audit_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != new_audit_id()


def _record(level: Level) -> AuditRecord:
    return AuditRecord(
        decision=Decision(level, frozenset(), omit_managed_fields=True),
        audit_id=new_audit_id(),
        request_uri="/api/v1/namespaces/ns/configmaps?fieldManager=kubectl",
        verb="create",
        user=user_info(UserInfo("alice", groups=("dev",), extra={"k": ("v",)})),
        source_ips=["203.0.113.7", "127.0.0.1"],
        user_agent='kubectl/v1.32 "quoted"',
        received=1_764_403_200.25,
        object_ref={"resource": "configmaps", "namespace": "ns", "apiVersion": "v1"},
        impersonated=user_info(UserInfo("bob")),
        # kept as Auditor.record keeps them: not at Metadata level, the response only at RequestResponse
        request_body=None
        if level == "Metadata"
        else bytearray(b'{"kind":"ConfigMap","metadata":{"name":"c","managedFields":[{"x":1}]}}'),
        response_body=bytearray(b'{"kind":"ConfigMap","metadata":{"name":"c","uid":"u"}}')
        if level == "RequestResponse"
        else None,
    )


@pytest.mark.parametrize("level", ["Metadata", "Request", "RequestResponse"])
@pytest.mark.parametrize("stage", ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"])
def test_a_json_line_is_the_event_it_stands_for(level: Level, stage: str) -> None:
    record = _record(level)
    record.json_line("RequestReceived", 1_764_403_200.5)  # the fixed part is serialized once, here
    record.status = {"metadata": {}, "code": 201}
    line = record.json_line(stage, 1_764_403_201.0)
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert json.loads(line) == record.event(stage, 1_764_403_201.0)


@pytest.mark.parametrize("level", ["Metadata", "Request", "RequestResponse"])
@pytest.mark.parametrize("stage", ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"])
@pytest.mark.parametrize("status", [{}, {"metadata": {}, "code": 200}, {"metadata": {}, "code": 403, "message": "é"}])
def test_a_json_line_is_byte_for_byte_the_serialized_event(level: Level, stage: str, status: dict[str, Any]) -> None:
    record = _record(level)
    record.json_line("RequestReceived", 1_764_403_200.5)
    record.status = status
    line = record.json_line(stage, 1_764_403_201.000002)
    assert line == orjson.dumps(record.event(stage, 1_764_403_201.000002)) + b"\n"


def test_a_line_with_the_memos_user_is_byte_for_byte_the_serialized_event() -> None:
    memo = UserMemo()
    user = UserInfo('ünïcode "quoted"', "u-1", ("dev", "a\\b"), {"k": ("v", "\u2028")})
    info, serialized = memo.get(user)
    assert memo.get(user) == (info, serialized)
    record = _record("Metadata")
    record.user, record.user_json = info, serialized
    record.status = {"metadata": {}, "code": 200}
    assert record.json_line("ResponseComplete", 2.5) == orjson.dumps(record.event("ResponseComplete", 2.5)) + b"\n"


def test_the_user_memo_is_bounded_in_entries_and_bytes() -> None:
    memo = UserMemo()
    users = [UserInfo(f"user-{n}") for n in range(USER_MEMO_SIZE + 10)]
    for user in users:
        memo.get(user)
    assert len(memo._entries) <= USER_MEMO_SIZE
    many_groups = tuple(f"group-{n:05d}" for n in range(20_000))  # ~300 kB of JSON each
    for n in range(60):
        memo.get(UserInfo(f"big-{n}", groups=many_groups))
        assert memo._bytes <= USER_MEMO_BYTES


def test_the_user_memo_answers_for_the_object_it_holds_not_an_equal_one() -> None:
    memo = UserMemo()
    first = UserInfo("alice", groups=("dev",))
    memo.get(first)
    other = UserInfo("alice", groups=("ops",))
    assert memo.get(other)[0]["groups"] == ["ops", "system:authenticated"]


def test_a_metadata_event_is_the_line_kube_apiserver_writes() -> None:
    record = _record("Metadata")
    received = record.json_line("RequestReceived", 1_764_403_200.5)
    record.status = {"metadata": {}, "code": 201}
    complete = record.json_line("ResponseComplete", 1_764_403_201.75)
    head = (
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s",'
        b'"requestURI":"/api/v1/namespaces/ns/configmaps?fieldManager=kubectl","verb":"create",'
        b'"user":{"username":"alice","groups":["dev","system:authenticated"],"extra":{"k":["v"]}},'
        b'"sourceIPs":["203.0.113.7","127.0.0.1"],"impersonatedUser":{"username":"bob","groups":["system:authenticated"]},'
        b'"userAgent":"kubectl/v1.32 \\"quoted\\"",'
        b'"objectRef":{"resource":"configmaps","namespace":"ns","apiVersion":"v1"},'
        b'"requestReceivedTimestamp":"2025-11-29T08:00:00.250000Z",' % record.audit_id.encode()
    )
    assert received == head + b'"stage":"RequestReceived","stageTimestamp":"2025-11-29T08:00:00.500000Z"}\n'
    assert complete == (
        head + b'"stage":"ResponseComplete","responseStatus":{"metadata":{},"code":201},'
        b'"stageTimestamp":"2025-11-29T08:00:01.750000Z"}\n'
    )


def test_event_fields_follow_the_level_and_stage() -> None:
    event = _record("RequestResponse").event("ResponseComplete", 1_764_403_201.0)
    assert event["requestObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"}}  # managedFields omitted
    assert event["responseObject"]["metadata"]["uid"] == "u"
    assert event["stageTimestamp"] == "2025-11-29T08:00:01.000000Z"
    assert event["requestReceivedTimestamp"] == "2025-11-29T08:00:00.250000Z"
    assert "requestObject" not in _record("Metadata").event("ResponseComplete", 0.0)
    assert "responseObject" not in _record("RequestResponse").event("ResponseStarted", 0.0)


def test_a_truncated_line_keeps_everything_but_the_objects_and_says_so() -> None:
    record = _record("RequestResponse")
    record.status = {"metadata": {}, "code": 201}
    full = json.loads(record.json_line("ResponseComplete", 1.0))
    truncated = json.loads(record.json_line("ResponseComplete", 1.0, truncated=True))
    assert "requestObject" in full and "responseObject" in full
    assert truncated == {
        **{k: v for k, v in full.items() if k not in ("requestObject", "responseObject")},
        "annotations": {"audit.k8s.io/truncated": "true"},
    }


def _go_quote(value: str) -> str:
    """Go's %q for the ASCII values used here."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_legacy_line_quotes_each_group_so_a_group_cannot_pass_for_two() -> None:
    forged = 'dev","system:masters'
    honest = {"username": "alice", "groups": ["dev", "system:masters"]}
    crafted = {"username": "alice", "groups": [forged]}
    lines = []
    for user in (honest, crafted):
        event = {
            "stageTimestamp": "2026-12-05T00:00:00.000000Z",
            "auditID": "a",
            "stage": "ResponseComplete",
            "sourceIPs": ["10.0.0.1"],
            "verb": "get",
            "user": user,
            "requestURI": "/api",
            "responseStatus": {"code": 200},
        }
        lines.append(to_legacy_line(event).decode())
    assert lines[0] != lines[1]
    # as kube-apiserver writes it: each element %q-quoted, then the list %q-quoted again
    inner = ",".join(_go_quote(g) for g in [forged])
    assert f"groups={_go_quote(inner)}" in lines[1]


def test_a_legacy_line_says_none_for_no_groups() -> None:
    event = {
        "stageTimestamp": "t", "auditID": "a", "stage": "ResponseStarted", "sourceIPs": [], "verb": "get",
        "user": {"username": "system:anonymous"}, "requestURI": "/",
    }  # fmt: skip
    assert 'groups="<none>"' in to_legacy_line(event).decode()
