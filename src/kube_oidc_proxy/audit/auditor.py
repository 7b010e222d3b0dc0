"""The request path's view of auditing: decide with the policy, build records, emit stages to the outputs.

``record()`` returns None when the policy's level is None, so an unaudited request costs one policy
lookup. ``emit()`` hands the event to every output: batch outputs queue it; a blocking log writes it; a
blocking webhook returns an awaitable the exchange waits for before it goes on, as kube-apiserver waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from kube_oidc_proxy.audit.backends import Batcher, Sink
from kube_oidc_proxy.audit.event import (
    AuditRecord,
    new_audit_id,
    object_ref,
    source_ips,
    to_json_line,
    to_legacy_line,
    user_info,
)
from kube_oidc_proxy.audit.policy import Policy
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.requestinfo import request_info

log = logging.getLogger("kop.audit")

Format = Literal["json", "legacy"]
Mode = Literal["batch", "blocking", "blocking-strict"]


@dataclass
class Output:
    sink: Sink
    format: Format = "json"
    mode: Mode = "batch"
    batcher: Batcher | None = None

    def line(self, event: dict[str, object]) -> bytes:
        return to_legacy_line(event) if self.format == "legacy" else to_json_line(event)


class Auditor:
    def __init__(self, policy: Policy, outputs: list[Output], clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.outputs = outputs
        self._clock = clock
        self.dropped: dict[str, int] = {}
        self.emitted = 0
        self.on_dropped: Callable[[str], None] | None = None  # told the backend of each dropped event (metrics)

    def dropped_event(self, backend: str) -> None:
        count = self.dropped.get(backend, 0) + 1
        self.dropped[backend] = count
        if self.on_dropped is not None:
            self.on_dropped(backend)
        if count == 1 or count % 1000 == 0:
            log.warning("audit %s buffer full: %d events dropped so far", backend, count)

    def record(
        self,
        *,
        method: bytes,
        target: bytes,
        user: UserInfo | None,
        impersonated: UserInfo | None,
        peer_ip: str,
        xff: list[bytes],
        real_ip: bytes | None,
        user_agent: bytes | None,
        received: float,
        audit_id: str | None = None,
    ) -> AuditRecord | None:
        uri = target.decode("latin-1")
        info = request_info(method.decode("latin-1"), uri)
        decision = self.policy.decide(user, info)
        if decision.level == "None":
            return None
        return AuditRecord(
            decision=decision,
            audit_id=audit_id or new_audit_id(),
            request_uri=uri,
            verb=info.verb,
            user=user_info(user) if user is not None else None,
            impersonated=user_info(impersonated) if impersonated is not None else None,
            source_ips=source_ips(xff, real_ip, peer_ip),
            user_agent=user_agent.decode("latin-1") if user_agent else "",
            received=received,
            object_ref=object_ref(info),
            request_body=bytearray() if decision.level in ("Request", "RequestResponse") else None,
            response_body=bytearray() if decision.level == "RequestResponse" else None,
        )

    def emit(self, record: AuditRecord, stage: str) -> Awaitable[None] | None:
        if stage in record.decision.omit_stages:
            return None
        event = record.event(stage, self._clock())
        self.emitted += 1
        waits: list[Awaitable[None]] = []
        for output in self.outputs:
            line = output.line(event)
            if output.batcher is not None:
                output.batcher.add(line)
            elif output.sink.name == "log":
                output.sink.write([line])
            else:
                waits.append(asyncio.to_thread(output.sink.write, [line]))
        if not waits:
            return None
        return _all(waits)

    def close(self) -> None:
        for output in self.outputs:
            if output.batcher is not None:
                output.batcher.close()
            else:
                output.sink.close()


async def _all(waits: list[Awaitable[None]]) -> None:
    await asyncio.gather(*waits)
