"""The request path's view of auditing: decide with the policy, build records, emit stages to the outputs.

``record()`` returns None when the policy's level is None, so an unaudited request costs one policy
lookup. ``emit()`` hands the event to every output: batch outputs queue it (never waiting); blocking
outputs return an awaitable the exchange waits for, as kube-apiserver waits (the log file only for
RequestReceived, before the request goes upstream: ``onloop``). With ``blocking-strict``
a RequestReceived event that cannot be written fails the request (500), as in kube-apiserver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from kube_oidc_proxy.audit.backends import Batcher, BatchSettings, LogFile, Sink
from kube_oidc_proxy.audit.event import (
    AuditRecord,
    UserMemo,
    new_audit_id,
    object_ref,
    source_ips,
    to_legacy_line,
    user_info,
)
from kube_oidc_proxy.audit.groupcommit import GroupCommit
from kube_oidc_proxy.audit.onloop import OnLoopLog
from kube_oidc_proxy.audit.policy import Policy
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.errors import ProxyError
from kube_oidc_proxy.requestinfo import RequestInfo, request_uri

log = logging.getLogger("kop.audit")

FAILURE_LOG_INTERVAL_SECONDS: Final = 10.0

Format = Literal["json", "legacy"]
Mode = Literal["batch", "blocking", "blocking-strict"]


class AuditFailed(ProxyError):
    """blocking-strict: the request's RequestReceived event could not be written."""


@dataclass
class Output:
    sink: Sink
    format: Format = "json"
    mode: Mode = "batch"
    batcher: Batcher | None = None  # batch mode
    group: GroupCommit | None = None  # blocking webhook
    on_loop: OnLoopLog | None = None  # blocking log file
    max_event_size: int = 0  # --audit-*-truncate-enabled: larger events lose their objects; 0: no limit


class Auditor:
    def __init__(self, policy: Policy, outputs: list[Output], clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.outputs = outputs
        self._clock = clock
        self.dropped: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.emitted = 0
        self.on_dropped: Callable[[str], None] | None = None  # told the backend of each dropped event (metrics)
        self.on_failed: Callable[[str, int], None] | None = None  # told of events a backend failed to write
        self._failure_logged: dict[str, float] = {}
        self._users = UserMemo()

    def dropped_event(self, backend: str) -> None:
        count = self.dropped.get(backend, 0) + 1
        self.dropped[backend] = count
        if self.on_dropped is not None:
            self.on_dropped(backend)
        if count == 1 or count % 1000 == 0:
            log.warning("audit %s buffer full: %d events dropped so far", backend, count)

    def add_output(
        self, sink: Sink, *, format: Format, mode: Mode, batch: BatchSettings, max_event_size: int = 0
    ) -> None:
        """An output delivering in ``mode``: batch through a buffer and a thread, blocking by group commit."""
        if mode == "batch":
            batcher = Batcher(sink, batch, self.dropped_event, self.write_failed)
            self.outputs.append(Output(sink, format, mode, batcher=batcher, max_event_size=max_event_size))
        elif isinstance(sink, LogFile):
            on_loop = OnLoopLog(sink, self.write_failed)
            self.outputs.append(Output(sink, format, mode, on_loop=on_loop, max_event_size=max_event_size))
        else:
            group = GroupCommit(sink, self.write_failed, in_thread=True)  # a POST must not stall the loop
            self.outputs.append(Output(sink, format, mode, group=group, max_event_size=max_event_size))

    def write_failed(self, backend: str, error: BaseException, count: int) -> None:
        total = self.failed.get(backend, 0) + count
        self.failed[backend] = total
        if self.on_failed is not None:
            self.on_failed(backend, count)
        now = time.monotonic()
        if now - self._failure_logged.get(backend, -FAILURE_LOG_INTERVAL_SECONDS) >= FAILURE_LOG_INTERVAL_SECONDS:
            self._failure_logged[backend] = now
            log.error("audit %s: writing events failed (%s): %d events lost so far", backend, error, total)

    def record(
        self,
        *,
        info: RequestInfo,
        target: bytes,
        user: UserInfo | None,
        impersonated: UserInfo | None,
        origin: Origin,
        user_agent: bytes | None,
        received: float,
        audit_id: str | None = None,
    ) -> AuditRecord | None:
        decision = self.policy.decide(user, info)
        if decision.level == "None":
            return None
        audited, audited_json = self._users.get(user) if user is not None else (None, b"")
        return AuditRecord(
            decision=decision,
            audit_id=audit_id or new_audit_id(),
            request_uri=request_uri(target),  # as kube-apiserver records it (Go's URL.RequestURI())
            verb=info.verb,
            user=audited,
            user_json=audited_json,
            impersonated=user_info(impersonated) if impersonated is not None else None,
            source_ips=source_ips(origin),
            user_agent=user_agent.decode("latin-1") if user_agent else "",
            received=received,
            object_ref=object_ref(info),
            request_body=bytearray() if decision.level in ("Request", "RequestResponse") else None,
            response_body=bytearray() if decision.level == "RequestResponse" else None,
        )

    def emit(self, record: AuditRecord, stage: str) -> Awaitable[bool] | None:
        if stage in record.decision.omit_stages:
            return None
        now = self._clock()
        self.emitted += 1
        waits: list[Awaitable[bool]] = []
        json_line = b""
        for output in self.outputs:
            if output.format == "legacy":
                line = to_legacy_line(record.event(stage, now))
            else:
                json_line = json_line or record.json_line(stage, now)
                line = json_line
                if output.max_event_size and len(line) > output.max_event_size:
                    line = record.json_line(stage, now, truncated=True)
                    if len(line) > output.max_event_size:
                        self.dropped_event(output.sink.name)  # too large even without its objects
                        continue
            if output.batcher is not None:
                output.batcher.add(line)
            elif output.on_loop is not None:
                received = stage == "RequestReceived"  # the only stage a request waits for
                written = output.on_loop.add(line, wait=received)
                if written is not None:
                    strict = output.mode == "blocking-strict"
                    waits.append(_required(written, output.sink.name) if strict else written)
            elif output.group is not None:
                written = output.group.add(line)
                strict = output.mode == "blocking-strict" and stage == "RequestReceived"
                waits.append(_required(written, output.sink.name) if strict else written)
        if not waits:
            return None
        return waits[0] if len(waits) == 1 else _all(waits)

    def close(self) -> None:
        for output in self.outputs:
            if output.batcher is not None:
                output.batcher.close()
            elif output.on_loop is not None:
                output.on_loop.close()
            else:
                output.sink.close()


async def _all(waits: list[Awaitable[bool]]) -> bool:
    results = await asyncio.gather(*waits)
    return all(results)


async def _required(written: Awaitable[bool], backend: str) -> bool:
    if not await written:
        raise AuditFailed("the request could not be audited", f"audit {backend}: the RequestReceived event was lost")
    return True
