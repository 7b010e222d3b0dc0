"""What one exchange leaves behind: its access line, its audit events and its request metrics.

The text access line is written once the request is decided (as the Go proxy writes it); the JSON line once
it is answered, with its status and duration. Audit events follow ``auditstages``; in a blocking audit mode
an event's write is awaited before the request goes on (``written``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable

from kube_oidc_proxy.audit.event import AuditRecord
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.gate import Admit, Deny
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.headers import get_one
from kube_oidc_proxy.observe.accesslog import AccessRecord
from kube_oidc_proxy.requestinfo import request_info
from kube_oidc_proxy.server import auditstages
from kube_oidc_proxy.server.auditstages import Stage
from kube_oidc_proxy.server.contracts import ServerSide


class ExchangeLog:
    __slots__ = (
        "_access",
        "_audit",
        "_lined",
        "_received",
        "_server",
        "_started",
        "_verb",
        "_waits",
        "_xff",
        "audit_id",
        "head",
        "own_page",
        "peer_ip",
        "protocol",
    )

    def __init__(self, server: ServerSide, head: RequestHead, peer_ip: str, protocol: str) -> None:
        self._server = server
        self.head = head
        self.peer_ip = peer_ip
        self.protocol = protocol  # "HTTP/1.1" or "HTTP/2", for the metrics and the JSON line
        self.audit_id = ""
        self._received = time.time()
        self._started = time.monotonic()
        self._verb = ""  # kube-apiserver's verb, when audit or metrics need it
        self._xff: list[bytes] = []  # the believed X-Forwarded-For chain
        self._access: AccessRecord | None = None  # for --log-format json, written when answered
        self._audit: AuditRecord | None = None
        self._waits: list[Awaitable[bool]] = []
        self._lined = False
        self.own_page = False  # a login page: not a kube-apiserver request, left out of the request metrics

    def decided(self, decision: Admit | Deny, origin: Origin, audit_id: str) -> None:
        """The gate's answer is known: start the records that need it (before the request headers go)."""
        server, head = self._server, self.head
        self.audit_id = audit_id
        self._xff = [", ".join(origin.forwarded_for).encode()] if origin.forwarded_for else []
        denied = isinstance(decision, Deny)
        outbound = None if isinstance(decision, Deny) else decision.outbound
        if server.metrics is not None:
            server.metrics.authenticated(None if decision.user is not None else decision.failure)
        if server.auditor is not None or server.metrics is not None:
            info = request_info(head.method.decode("latin-1"), head.target.decode("latin-1"))
            self._verb = info.verb
            if server.auditor is not None:
                self._audit = server.auditor.record(
                    info=info,
                    target=head.target,
                    user=decision.user,
                    impersonated=outbound,
                    origin=origin,
                    audit_id=audit_id,
                    user_agent=get_one(head.headers, b"user-agent"),
                    received=self._received,
                )
        if server.access_log.json:
            self._access = AccessRecord(
                self._received,
                origin.peer_ip,
                not denied,
                head.method,
                head.target,
                xff=self._xff,
                user=decision.user,
                outbound=outbound,
                audit_id=audit_id,
                reason=decision.reason if isinstance(decision, Deny) else "",
                protocol=self.protocol,
            )

    def line(self, admitted: Admit | None, failure: str = "") -> None:
        """The text access line, once per request; ``failure`` for the JSON line of a failed one."""
        if failure and self._access is not None:
            self._access.reason = failure
        if self._lined:
            return
        self._lined = True
        access_log = self._server.access_log
        if admitted is None:
            access_log.failure(self.peer_ip, self._xff, self.head.target)
        else:
            access_log.success(self.peer_ip, self._xff, self.head.target, admitted.user, admitted.outbound)

    def stages(self, stages: tuple[Stage, ...], code: int = 0, message: str = "") -> None:
        record = self._audit
        auditor = self._server.auditor
        if record is None or auditor is None:
            return
        if code:
            record.status = auditstages.response_status(code, message)
        for stage in stages:
            wait = auditor.emit(record, stage)
            if wait is not None:
                self._waits.append(wait)

    @property
    def writing(self) -> bool:
        """Audit events are being written that the exchange awaits (blocking audit): ask before awaiting
        ``written`` or ``settled``, so a request with nothing to wait for makes no coroutine."""
        return bool(self._waits)

    async def written(self) -> None:
        """Blocking audit: wait for the events emitted so far to be written (AuditFailed if strict)."""
        waits, self._waits = self._waits, []
        for wait in waits:
            await wait

    async def settled(self) -> None:
        """At the end of the exchange: the events' writes are over, whatever became of them."""
        for wait in self._waits:
            with contextlib.suppress(Exception):  # a failed write is counted and logged by the auditor
                await wait
        self._waits.clear()

    def relayed(self, status: int, sent_at: float, *, long_running: bool) -> None:
        """kube-apiserver's response head went to the client."""
        metrics = self._server.metrics
        if metrics is not None and status != 101:
            if sent_at:
                metrics.upstream_duration.observe(time.monotonic() - sent_at)
            if long_running:
                metrics.watches.inc()
        if self._audit is not None:
            if status == 101:
                self.stages(auditstages.response_head(101, long_running=True), 101)
            else:
                self._audit.status = {"metadata": {}, "code": status}
                self.stages(auditstages.response_head(status, long_running=long_running))

    def capture_request(self, data: bytes) -> None:
        record = self._audit
        if record is not None and record.request_body is not None:
            record.request_body = record.capture(record.request_body, data)

    def capture_response(self, data: bytes) -> None:
        record = self._audit
        if record is not None and record.response_body is not None:
            record.response_body = record.capture(record.response_body, data)

    def tunnel_ended(self) -> None:
        self.stages(auditstages.ENDED)
        for wait in self._waits:  # nobody awaits a finished exchange: let a blocking webhook finish alone
            self._server.spawn(_awaited(wait))
        self._waits.clear()

    @property
    def audited(self) -> bool:
        return self._audit is not None

    def answered(self, code: int, *, long_running: bool, watched: bool) -> None:
        """The exchange is over: ``code`` 0 if the client left before a response began."""
        metrics = self._server.metrics
        if metrics is not None and code and not self.own_page:
            metrics.request_done(self._verb, code, self.protocol, self._started, long_running=long_running)
            if watched:
                metrics.watches.dec()
        record = self._access
        if record is not None:
            record.status = code
            record.duration = time.monotonic() - self._started
            self._server.access_log.answered(record)


async def _awaited(wait: Awaitable[bool]) -> None:
    with contextlib.suppress(Exception):
        await wait
