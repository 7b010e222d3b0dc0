"""Audit events (audit.k8s.io/v1 ``Event``) for one request, and their two log formats.

``AuditRecord`` is created once the policy says a request is audited; it collects what the stages need and
``event()`` turns it into the event of a stage. User is the authenticated caller; ``impersonatedUser`` is
the target of ``kubectl --as``; sourceIPs are the X-Forwarded-For chain, X-Real-Ip, then the peer, as
kube-apiserver lists them (the forwarded ones only from ``--trusted-proxy-cidrs``). At Request level the
request body is kept (JSON, bounded), at RequestResponse the response body too; ``managedFields`` are
dropped when the policy says so.
Pure: the clock is passed in; serialisation uses orjson (the request path pays for it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kube_oidc_proxy import gojson
from kube_oidc_proxy.audit.policy import Decision
from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.http1.headers import Headers, get_all
from kube_oidc_proxy.requestinfo import RequestInfo
from kube_oidc_proxy.rfc3339 import timestamp

MAX_CAPTURED_BODY: Final = 1024 * 1024  # bodies above this are left out of Request/RequestResponse events
API_VERSION: Final = "audit.k8s.io/v1"
TRUNCATED_ANNOTATION: Final = "audit.k8s.io/truncated"


class _AuditIDs:
    """Random (version 4) UUIDs, as kube-apiserver's, from randomness read 256 IDs at a time: one getrandom
    call per ID was a measurable share of an audited request."""

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)  # a forked worker must not reuse its parent's bytes

    def _forget(self) -> None:
        self._pool, self._offset = b"", 0

    def __call__(self) -> str:
        if self._offset >= len(self._pool):
            self._pool, self._offset = os.urandom(16 * 256), 0
        h = self._pool[self._offset : self._offset + 16].hex()
        self._offset += 16
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


new_audit_id: Final = _AuditIDs()
# A client's Audit-ID is adopted (kube-apiserver adopts any) only when it cannot break a log line or a header
# and is short enough to be an identifier: a UUID, or a tracing ID of another gateway.
_WELL_FORMED_AUDIT_ID: Final = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def audit_id_for(headers: Headers) -> str:
    """The one Audit-ID of a request: the client's, when it sent exactly one well-formed value, else a new one.
    It is what goes to kube-apiserver, what the proxy logs and audits, and what the response echoes."""
    values = get_all(headers, b"audit-id")
    if len(values) == 1 and _WELL_FORMED_AUDIT_ID.fullmatch(values[0]):
        return values[0].decode("ascii")
    return new_audit_id()


def user_info(user: UserInfo, *, authenticated: bool = True) -> dict[str, Any]:
    groups = list(user.groups)
    if authenticated and SYSTEM_AUTHENTICATED not in groups:
        groups.append(SYSTEM_AUTHENTICATED)
    info: dict[str, Any] = {"username": user.username}
    if user.uid:
        info["uid"] = user.uid
    info["groups"] = groups
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


USER_MEMO_SIZE: Final = 4096
USER_MEMO_BYTES: Final = 8 * 1024 * 1024


class UserMemo:
    """The audit ``user`` of recently seen verified users, as a dict and as its JSON, by object: the token
    cache hands out the same UserInfo for every request with one token, so each is built once, not per
    request. Bounded in entries and in bytes (a user may carry thousands of groups), then cleared."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[UserInfo, dict[str, Any], bytes]] = {}
        self._bytes = 0

    def get(self, user: UserInfo) -> tuple[dict[str, Any], bytes]:
        known = self._entries.get(id(user))
        if known is not None and known[0] is user:
            return known[1], known[2]
        info = user_info(user)
        serialized = orjson.dumps(info)
        if len(self._entries) >= USER_MEMO_SIZE or self._bytes + len(serialized) > USER_MEMO_BYTES:
            self._entries.clear()
            self._bytes = 0
        self._entries[id(user)] = (user, info, serialized)  # holding the user keeps its id from being reused
        self._bytes += len(serialized)
        return info, serialized


def source_ips(origin: Origin) -> list[str]:
    """kube-apiserver's order: X-Forwarded-For, X-Real-Ip, the peer; here only what the proxy believes."""
    if not origin.forwarded_for and not origin.real_ip:
        return [origin.peer_ip]  # the usual case, without building and deduplicating a list
    ips = [*origin.forwarded_for]
    if origin.real_ip:
        ips.append(origin.real_ip)
    ips.append(origin.peer_ip)
    return list(dict.fromkeys(ips))


def object_ref(info: RequestInfo) -> dict[str, str] | None:
    if not info.is_resource_request:
        return None
    ref = {"resource": info.resource}  # the keys in kube-apiserver's order, each only when set
    if info.namespace:
        ref["namespace"] = info.namespace
    if info.name:
        ref["name"] = info.name
    if info.api_group:
        ref["apiGroup"] = info.api_group
    if info.api_version:
        ref["apiVersion"] = info.api_version
    if info.subresource:
        ref["subresource"] = info.subresource
    return ref


def _without_managed_fields(obj: Any) -> Any:
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and "managedFields" in metadata:
            obj = {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
        if isinstance(obj.get("items"), list):
            obj = {**obj, "items": [_without_managed_fields(i) for i in obj["items"]]}
    return obj


@dataclass(slots=True)
class AuditRecord:
    decision: Decision
    audit_id: str
    request_uri: str
    verb: str
    user: dict[str, Any] | None
    source_ips: list[str]
    user_agent: str
    received: float
    object_ref: dict[str, str] | None = None
    impersonated: dict[str, Any] | None = None
    request_body: bytearray | None = None
    response_body: bytearray | None = None
    status: dict[str, Any] = field(default_factory=dict)
    user_json: bytes = b""  # ``user`` serialized, when the caller has it already (``UserMemo``)
    _head: bytes = b""  # json_line's serialized fixed fields

    @property
    def wants_request(self) -> bool:
        return self.decision.level in ("Request", "RequestResponse")

    @property
    def wants_response(self) -> bool:
        return self.decision.level == "RequestResponse"

    def capture(self, buffer: bytearray | None, data: bytes) -> bytearray | None:
        """Keep ``data`` for the event while the body stays small; None once it is too large."""
        if buffer is None or len(buffer) + len(data) > MAX_CAPTURED_BODY:
            return None
        buffer += data
        return buffer

    def _object(self, body: bytearray | None) -> Any:
        if not body:
            return None
        try:
            obj = gojson.loads(body)  # as kube-apiserver decodes it: text that is not UTF-8 is U+FFFD
        except ValueError:
            return None
        return _without_managed_fields(obj) if self.decision.omit_managed_fields else obj

    def event(self, stage: str, now: float) -> dict[str, Any]:
        return {**self._fixed(), **self._stage_fields(stage, now)}

    def json_line(self, stage: str, now: float, *, truncated: bool = False) -> bytes:
        """``event()`` as one JSON line, byte for byte what ``orjson.dumps(event())`` gives. What every stage
        repeats is serialized once, for the first stage; a stage without objects (always at Metadata level)
        is put together from bytes, without a dict (stage names and timestamps need no escaping).
        ``truncated``: without the request and response objects, annotated as kube-apiserver does."""
        if not self._head:
            self._head = self._head_bytes()
        if not truncated and self.request_body is None and self.response_body is None:
            status = b""
            if stage != "RequestReceived" and (answer := self.status):
                if len(answer) == 2 and not answer["metadata"]:  # the usual status: only a code
                    status = b'"responseStatus":{"metadata":{},"code":%d},' % answer["code"]
                else:
                    status = b'"responseStatus":%s,' % orjson.dumps(answer)
            return b'%s"stage":"%s",%s"stageTimestamp":"%s"}\n' % (
                self._head,
                stage.encode(),
                status,
                timestamp(now).encode(),
            )
        fields = self._stage_fields(stage, now, with_objects=not truncated)
        if truncated:
            fields["annotations"] = {TRUNCATED_ANNOTATION: "true"}
        return self._head + orjson.dumps(fields)[1:] + b"\n"

    def _head_bytes(self) -> bytes:
        """``_fixed()`` serialized, without its closing brace; the user as the JSON the memo keeps of it."""
        fixed = self._fixed()
        if self.user_json:
            fixed["user"] = orjson.Fragment(self.user_json)
        return orjson.dumps(fixed)[:-1] + b","

    def _fixed(self) -> dict[str, Any]:
        fixed: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": API_VERSION,
            "level": self.decision.level,
            "auditID": self.audit_id,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": self.user or {},
            "sourceIPs": self.source_ips,
        }
        if self.impersonated is not None:
            fixed["impersonatedUser"] = self.impersonated
        if self.user_agent:
            fixed["userAgent"] = self.user_agent
        if self.object_ref is not None:
            fixed["objectRef"] = self.object_ref
        fixed["requestReceivedTimestamp"] = timestamp(self.received)
        return fixed

    def _stage_fields(self, stage: str, now: float, *, with_objects: bool = True) -> dict[str, Any]:
        fields: dict[str, Any] = {"stage": stage}
        if stage != "RequestReceived" and self.status:
            fields["responseStatus"] = self.status
        if with_objects and self.wants_request and (obj := self._object(self.request_body)) is not None:
            fields["requestObject"] = obj
        if (
            with_objects
            and stage == "ResponseComplete"
            and self.wants_response
            and (obj := self._object(self.response_body)) is not None
        ):
            fields["responseObject"] = obj
        fields["stageTimestamp"] = timestamp(now)
        return fields


def to_legacy_line(event: dict[str, Any]) -> bytes:
    """kube-apiserver's ``--audit-log-format=legacy`` line."""
    user = event.get("user") or {}
    impersonated = event.get("impersonatedUser")

    def q(value: str) -> str:
        return orjson.dumps(value).decode()

    def quoted_list(values: list[str]) -> str:
        # kube-apiserver's auditStringSlice: each element %q-quoted, so `dev","system:masters` stays one group
        return ",".join(map(q, values)) if values else "<none>"

    groups = quoted_list(user.get("groups", []))
    as_groups = quoted_list(impersonated.get("groups", [])) if impersonated else "<lookup>"
    response = str(event["responseStatus"]["code"]) if "responseStatus" in event else "<deferred>"

    ip = event["sourceIPs"][0] if event["sourceIPs"] else "<unknown>"
    return (
        f"{event['stageTimestamp']} AUDIT: id={q(event['auditID'])} stage={q(event['stage'])} ip={q(ip)} "
        f"method={q(event['verb'])} user={q(user.get('username', '<none>'))} groups={q(groups)} "
        f"as={q(impersonated['username'] if impersonated else '<self>')} asgroups={q(as_groups)} "
        f"user-agent={q(event.get('userAgent', ''))} namespace={q(event.get('objectRef', {}).get('namespace', ''))} "
        f'uri={q(event["requestURI"])} response="{response}"\n'
    ).encode()
