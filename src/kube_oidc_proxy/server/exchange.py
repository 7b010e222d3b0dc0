"""One request's life: decide (gate), forward, relay the response, or switch to a tunnel.

The ``run`` coroutine reads top to bottom: gate -> access line -> upstream -> request body. The response
comes back through ``on_response_events``, called synchronously by the upstream connection, which writes
each piece to the client at once (a watch event is never held back). ``run`` returns when the response
is complete, failed, or became a tunnel.

Failure rules: before the response head is written, any failure becomes a Kubernetes Status response; after
it, the client connection is closed without completing the body, so a truncated response can never look
complete. A request whose body was not read to the end is answered with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

from kube_oidc_proxy.audit.event import AuditRecord, audit_id_for
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.errors import ProxyError, UnaskedSwitch, UpstreamError, UpstreamTimeout
from kube_oidc_proxy.gate import Admit, Deny
from kube_oidc_proxy.http1.events import (
    Body,
    ChunkEnd,
    MessageEnd,
    RequestHead,
    ResponseEvent,
    ResponseHead,
    Upgraded,
)
from kube_oidc_proxy.http1.headers import Headers, connection_options, get_one, is_hop_by_hop
from kube_oidc_proxy.http1.serialize import (
    CONTINUE_100,
    LAST_CHUNK,
    chunk,
    request_head,
    response_head,
    status_response,
)
from kube_oidc_proxy.observe.accesslog import AccessRecord
from kube_oidc_proxy.requestinfo import RequestInfo, is_long_running, request_info
from kube_oidc_proxy.server.inflight import is_mutating
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import UpstreamConnection
from kube_oidc_proxy.server.upstream_h2 import H2Stream
from kube_oidc_proxy.server.upstreams import Upstream
from kube_oidc_proxy.status import REASONS
from kube_oidc_proxy.upgrade import switch_problem

if TYPE_CHECKING:
    from kube_oidc_proxy.server.connection import ClientConnection

log = logging.getLogger("kop.proxy")

# Buffer at most this much of a request body before we stop reading the client (uvicorn's figure).
BODY_HIGH_WATER: Final = 64 * 1024
# A client that stops sending its request body for this long is cut off.
BODY_IDLE_TIMEOUT_SECONDS: Final = 60.0
# Retrying is safe only where a lost response cannot mean a change was made (RFC 9110 §9.2.2, and
# Go's transport rule: only requests without a body, on a reused connection, before any response byte).
RETRYABLE_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS"})


TOO_MANY_REQUESTS: Final = "Too many requests, please try again later."  # kube-apiserver's words


class _ClientGone(Exception):
    pass


class Exchange:
    # Slots: thousands of watches each hold one of these for hours.
    __slots__ = (
        "_audit",
        "_audit_id",
        "_audit_waits",
        "_body",
        "_body_buffered",
        "_body_sent",
        "_body_waiter",
        "_chosen",
        "_chunked",
        "_code",
        "_deadline",
        "_done",
        "_inflight",
        "_logged",
        "_logged_line",
        "_long_running",
        "_origin",
        "_outbound",
        "_own_credential",
        "_received",
        "_sent",
        "_started",
        "_verb",
        "at_boundary",
        "body_done",
        "conn",
        "head",
        "is_stream",
        "keep_alive",
        "response_started",
        "server",
        "task",
        "upgrade_tail",
        "upstream",
        "user_description",
    )

    def __init__(self, conn: ClientConnection, head: RequestHead) -> None:
        self.conn = conn
        self.server = conn.server
        self.head = head
        self.keep_alive = head.keep_alive and head.http_version == "1.1"
        # request body, filled by the client connection
        self._body: deque[bytes] = deque()
        self._body_buffered = 0
        self.body_done = head.framing == "none"
        self._body_sent = self.body_done  # every byte of it written upstream: only then may its connection be reused
        self._body_waiter: asyncio.Future[None] | None = None
        self.upgrade_tail = b""
        # response state
        self.upstream: UpstreamConnection | H2Stream | None = None
        self.response_started = False
        self._chunked = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.user_description = ""
        self.is_stream = False  # a watch or a followed log: ended at a chunk boundary on shutdown
        self.at_boundary = True
        self.task: asyncio.Task[None] | None = None
        self._outbound: Headers | None = None  # the headers for kube-apiserver, kept until answered
        self._long_running = is_long_running(head.method, head.target)
        self._inflight: bool | None = None  # counted against the in-flight limit: whether as mutating
        self._received = time.time()
        self._started = time.monotonic()
        self._sent = 0.0  # when the request went upstream, for the upstream latency metric
        self._deadline = 0.0  # loop time by which kube-apiserver's response head is due (--request-timeout)
        self._code = 0
        self._verb = ""  # kube-apiserver's verb, when audit or metrics need it
        self._logged: AccessRecord | None = None  # for --log-format json, written when answered
        self._audit: AuditRecord | None = None
        self._audit_waits: list[Awaitable[bool]] = []
        self._origin: Origin | None = None  # set first thing in run()
        self._own_credential = False  # the proxy's own token went upstream (not the caller's)
        self._chosen: Upstream | None = None  # the proxy's connections or the caller's, by the decision
        self._audit_id = ""
        self._logged_line = False  # the text access line is written once per request

    # -- the request path, top to bottom ----------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except _ClientGone:
            pass
        except ProxyError as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            self._drop_upstream()
            raise
        except Exception:
            log.exception("internal error while proxying %s", self.head.target.decode("latin-1"))
            self._audit_stage("Panic", 500, "internal error")
            self._fail(ProxyError("internal error"))
        finally:
            self._drop_upstream()  # whatever is still attached now (a client that left mid-way) is not needed
            if self._done.done() and not self._done.cancelled():
                self._done.exception()  # seen: a client that left before anyone awaited the answer is no error
            for wait in self._audit_waits:  # blocking audit: the exchange ends when its events are written
                with contextlib.suppress(Exception):
                    await wait
            if self._inflight is not None:
                self.server.inflight.leave(self._inflight)
            self._count()
            self._log_answered()
            self.conn.exchange_finished(self)

    async def _run(self) -> None:
        server = self.server
        head = self.head
        if not (self._long_running or head.upgrade):
            mutating = is_mutating(head.method)
            if not server.inflight.enter(mutating):
                server.request_shed(self.conn.peer_ip, head.target, mutating)
                head.headers.clear()
                self._respond_status(429, TOO_MANY_REQUESTS, extra=[(b"Retry-After", b"1")])
                return
            self._inflight = mutating
        origin = self._origin = server.trusted_proxies.origin(head.headers, self.conn.peer_ip)
        self._audit_id = audit_id_for(head.headers)
        decision = await server.gate.decide(head, origin)
        if server.metrics is not None:
            server.metrics.authenticated(None if decision.user is not None else decision.failure)
        if server.auditor is not None or server.metrics is not None:
            info = request_info(head.method.decode("latin-1"), head.target.decode("latin-1"))
            self._verb = info.verb
            if server.auditor is not None:
                self._begin_audit(decision, info, origin)
        if server.access_log.json:
            self._logged = AccessRecord(
                self._received,
                origin.peer_ip,
                not isinstance(decision, Deny),
                head.method,
                head.target,
                xff=self._xff,
                user=decision.user,
                outbound=None if isinstance(decision, Deny) else decision.outbound,
                audit_id=self._audit_id,
                reason=decision.reason if isinstance(decision, Deny) else "",
            )
        # From here on the request's headers (with the caller's token) are not needed, and a watch can live
        # for hours. The list belongs to this request alone (the reader started a new one), so empty it.
        head.headers.clear()
        if isinstance(decision, Deny):
            self._log_line(admitted=None)
            log.info("rejected %s %s: %s", head.method.decode(), head.target.decode("latin-1"), decision.reason)
            self._respond_status(decision.code, decision.message)
            # kube-apiserver audits a failed authentication as one ResponseStarted event
            if decision.code != 401:
                self._audit_stage("RequestReceived")
            self._audit_stage(
                "ResponseStarted" if decision.code == 401 else "ResponseComplete", decision.code, decision.message
            )
            return
        self._log_line(admitted=decision)
        self.user_description = decision.user.username
        self._outbound = self._outbound_head(decision)
        del decision
        if self._audit is not None:
            self._audit_stage("RequestReceived")
            waits, self._audit_waits = self._audit_waits, []
            for wait in waits:  # blocking audit: the event is written before kube-apiserver hears of the request
                await wait
        if head.upgrade:
            await self._upgrade()
        else:
            await self._forward()

    @property
    def _connections(self) -> Upstream:
        """The connections the decision chose; there is no default (see ``server.upstreams``)."""
        assert self._chosen is not None, "no upstream before a decision"
        return self._chosen

    @property
    def _xff(self) -> list[bytes]:
        """The believed X-Forwarded-For chain, for the access log."""
        origin = self._origin
        return [", ".join(origin.forwarded_for).encode()] if origin is not None and origin.forwarded_for else []

    def _log_line(self, admitted: Admit | None) -> None:
        """The text access line: one per request, written once the request is decided (as the Go proxy)."""
        if self._logged_line:
            return
        self._logged_line = True
        peer = self.conn.peer_ip
        if admitted is None:
            self.server.access_log.failure(peer, self._xff, self.head.target)
        else:
            self.server.access_log.success(peer, self._xff, self.head.target, admitted.user, admitted.outbound)

    def _outbound_head(self, admit: Admit) -> Headers:
        """The decision's headers, one Audit-ID (kube-apiserver adopts it) and its connections' credential."""
        connections = self._chosen = self.server.upstream_for(admit)
        credential = connections.credential_headers()
        self._own_credential = bool(credential)
        return [*admit.headers, (b"audit-id", self._audit_id.encode()), *credential]

    # -- audit ------------------------------------------------------------------------------------

    def _begin_audit(self, decision: Admit | Deny, info: RequestInfo, origin: Origin) -> None:
        auditor = self.server.auditor
        assert auditor is not None
        head = self.head
        self._audit = auditor.record(
            info=info,
            target=head.target,
            user=decision.user,
            impersonated=None if isinstance(decision, Deny) else decision.outbound,
            origin=origin,
            audit_id=self._audit_id,
            user_agent=get_one(head.headers, b"user-agent"),
            received=self._received,
        )

    def _count(self) -> None:
        metrics = self.server.metrics
        if metrics is None or not self._code:
            return
        metrics.request_done(self._verb, self._code, self._started, long_running=self.is_stream or self.head.upgrade)
        if self.is_stream:
            metrics.watches.dec()

    def _log_answered(self) -> None:
        record = self._logged
        if record is None:
            return
        record.status = self._code  # 0: the client left before the response began
        record.duration = time.monotonic() - self._started
        self.server.access_log.answered(record)

    def _tunnel_ended(self) -> None:
        self._audit_stage("ResponseComplete")
        for wait in self._audit_waits:  # nobody awaits a finished exchange: let a blocking webhook finish alone
            self.server.spawn(_awaited(wait))
        self._audit_waits.clear()

    def _audit_stage(self, stage: str, code: int = 0, message: str = "") -> None:
        record = self._audit
        auditor = self.server.auditor
        if record is None or auditor is None:
            return
        if code:
            record.status = {"metadata": {}, "code": code}
            if code >= 400:
                record.status |= {"status": "Failure", "message": message, "reason": REASONS.get(code, "")}
        wait = auditor.emit(record, stage)
        if wait is not None:
            self._audit_waits.append(wait)

    async def _forward(self) -> None:
        head = self.head
        h2 = self._connections.h2
        h2_ready = h2 is not None and h2.available
        # A stream carries no request body here: a long-running request with one goes over HTTP/1.1 whole.
        if self._long_running and head.framing == "none" and h2_ready and await self._forward_h2():
            return
        retry_allowed = head.method in RETRYABLE_METHODS and head.framing == "none"
        while True:
            upstream = await self._within_request_timeout(self._connections.pool.acquire())
            self._attach(upstream, head_only=head.method == b"HEAD")
            assert self._outbound is not None
            upstream.write(request_head(head.method, head.target, self._outbound))
            if head.expect_continue and not self.body_done:
                self.conn.write(CONTINUE_100)
            try:
                if head.framing != "none":
                    await self._send_body(upstream)
                await self._wait_response()
                return
            except UpstreamError as exc:
                stale = upstream.reused and not upstream.received and not self.response_started
                if isinstance(exc, UpstreamTimeout) or not (retry_allowed and stale):
                    raise
                retry_allowed = False  # once: this was a keep-alive connection the server had closed
                self._done = asyncio.get_running_loop().create_future()

    async def _forward_h2(self) -> bool:
        """Send a long-running request as a stream on a shared HTTP/2 connection; False if unavailable."""
        h2 = self._connections.h2
        assert h2 is not None and self._outbound is not None
        authority = self._connections.target.authority.encode()
        headers: Headers = [
            (b":method", self.head.method),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", self.head.target),
        ]
        headers += [(n, v) for n, v in self._outbound if n != b"host"]
        self._sent = time.monotonic()
        stream = await h2.open_stream(self, headers)
        del headers
        if stream is None:
            return False
        self.upstream = stream
        if self.conn.closed:
            raise _ClientGone  # it left while a connection was found: the stream is reset (run() drops it)
        await self._wait_response()
        return True

    async def _upgrade(self) -> None:
        upstream = await self._within_request_timeout(self._connections.pool.connect())
        self._attach(upstream, head_only=False)
        assert self._outbound is not None
        upstream.write(request_head(self.head.method, self.head.target, self._outbound))
        await self._wait_response()

    def _attach(self, upstream: UpstreamConnection, *, head_only: bool) -> None:
        if self.conn.closed:  # the client left while a connection was found: nothing is sent for it
            self._connections.pool.release(upstream)  # back to the pool if it is a clean idle one, else closed
            raise _ClientGone
        self._sent = time.monotonic()
        self.upstream = upstream
        upstream.begin(self, head_only=head_only)

    async def _within_request_timeout(self, connecting: Awaitable[UpstreamConnection]) -> UpstreamConnection:
        """--request-timeout counts from here: a kube-apiserver that accepts connections but never finishes
        the TLS handshake times out as one that never sends its response head (not after the 10 s connect
        limit)."""
        timeout = self.server.request_timeout
        if not timeout:
            return await connecting
        loop = asyncio.get_running_loop()
        if not self._deadline:
            self._deadline = loop.time() + timeout
        try:
            return await asyncio.wait_for(connecting, max(self._deadline - loop.time(), 0.0))
        except TimeoutError:
            raise UpstreamTimeout(
                "kube-apiserver did not answer in time", "connecting timed out (--request-timeout)"
            ) from None

    async def _wait_response(self) -> None:
        timeout = self.server.request_timeout
        if not timeout:
            await self._done
            return
        loop = asyncio.get_running_loop()
        if self._deadline:  # the connection counted too
            timeout = max(self._deadline - loop.time(), 0.0)
        timer = loop.call_later(timeout, self._response_timed_out)
        try:
            await self._done
        finally:
            timer.cancel()

    def _response_timed_out(self) -> None:
        if not self.response_started and not self._done.done():
            self._drop_upstream()
            self._done.set_exception(
                UpstreamTimeout("kube-apiserver did not answer in time", "response head timed out")
            )

    # -- request body -----------------------------------------------------------------------------

    def receive_body(self, data: bytes) -> None:
        self._body.append(data)
        self._body_buffered += len(data)
        if self._body_buffered > BODY_HIGH_WATER:
            self.conn.pause_reading("body")
        self._wake_body()

    def body_complete(self) -> None:
        self.body_done = True
        self._wake_body()

    def _wake_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send_body(self, upstream: UpstreamConnection) -> None:
        chunked = self.head.framing == "chunked"
        while True:
            while self._body:
                data = self._body.popleft()
                self._body_buffered -= len(data)
                if self._audit is not None and self._audit.request_body is not None:
                    self._audit.request_body = self._audit.capture(self._audit.request_body, data)
                if chunked:
                    upstream.writelines(chunk(data))
                else:
                    upstream.write(data)
                if self._body_buffered <= BODY_HIGH_WATER:
                    self.conn.resume_reading("body")
                await upstream.drain()
                if upstream.closed:
                    return  # the upstream answered early or went away: the response path reports it
            if self.body_done:
                if chunked:
                    upstream.write(LAST_CHUNK)
                self._body_sent = True
                return
            self._body_waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._body_waiter, BODY_IDLE_TIMEOUT_SECONDS)
            except TimeoutError:
                self.keep_alive = False
                self._drop_upstream()
                raise _ClientGone from None
            finally:
                self._body_waiter = None

    # -- response, called by the upstream connection ----------------------------------------------

    def on_response_events(self, events: list[ResponseEvent]) -> None:
        for event in events:
            if type(event) is Body:
                self._relay_body(event.data)
            elif type(event) is ChunkEnd:
                self.at_boundary = True
                if self.is_stream and self.conn.stopping:
                    self.end_stream()
                    return
            elif type(event) is ResponseHead:
                self._relay_head(event)
            elif type(event) is MessageEnd:
                self._complete()
            elif type(event) is Upgraded:
                self._switch_to_tunnel(event.tail)

    def _relay_head(self, response: ResponseHead) -> None:
        if self._done.done():
            return
        upstream = self.upstream
        assert upstream is not None
        asked, self._outbound = self._outbound, None  # answered: no retry from here on
        self.server.upstream_answered(response.status)
        if response.status == 401 and self._own_credential:  # not a caller's token, not a pod's own 401
            self._connections.credential_refused()
        if response.status == 101:
            problem = switch_problem(asked or [], response.headers) if self.head.upgrade else "no upgrade was asked"
            if problem is not None:  # a 502 Status; the upstream connection is closed (and an upgrade's client's)
                self._drop_upstream()
                self._done.set_exception(UnaskedSwitch(problem))
                return
            self.response_started = True
            self._code = 101
            self.conn.write(response_head(101, response.reason, response.headers))
            self._audit_stage("ResponseStarted", 101)
            return
        if self.head.upgrade or not self.body_done or self.conn.stopping:
            self.keep_alive = False
        headers = self._response_headers(response)
        self.response_started = True
        self._code = response.status
        metrics = self.server.metrics
        if metrics is not None:
            if self._sent:
                metrics.upstream_duration.observe(time.monotonic() - self._sent)
            if self.is_stream:
                metrics.watches.inc()
        self.conn.write(response_head(response.status, response.reason, headers))
        if self._audit is not None:
            self._audit.status = {"metadata": {}, "code": response.status}
            if self.is_stream:
                self._audit_stage("ResponseStarted")

    def _response_headers(self, response: ResponseHead) -> Headers:
        dropped = connection_options(response.headers)
        headers: Headers = []
        for name, value in response.headers:
            lowered = name.lower()
            if is_hop_by_hop(lowered, dropped):
                continue
            if lowered == b"content-type" and b"stream=watch" in value:
                self.is_stream = True
            headers.append((name, value))
        if response.framing in ("chunked", "close"):
            if self.head.http_version == "1.1":
                self._chunked = True
                headers.append((b"Transfer-Encoding", b"chunked"))
            else:
                self.keep_alive = False  # HTTP/1.0: the body ends when we close
        if self._long_running:
            self.is_stream = True
        if self.is_stream:
            self.conn.release_reader()
        if not self.keep_alive:
            headers.append((b"Connection", b"close"))
        if not any(n.lower() == b"audit-id" for n, _ in headers):  # kube-apiserver echoes it; a kubelet may not
            headers.append((b"Audit-Id", self._audit_id.encode()))
        return headers

    def _relay_body(self, data: bytes) -> None:
        record = self._audit
        if record is not None and record.response_body is not None and not self.is_stream:
            record.response_body = record.capture(record.response_body, data)
        if self._chunked:
            self.at_boundary = False
            self.conn.writelines(chunk(data))
        else:
            self.conn.write(data)

    def _complete(self) -> None:
        if self._done.done():
            return
        if self._chunked:
            self.conn.write(LAST_CHUNK)
        self._audit_stage("ResponseComplete")
        upstream = self.upstream
        self.upstream = None
        if isinstance(upstream, H2Stream):
            upstream.finished()
        elif upstream is not None:
            if self._body_sent:
                self._connections.pool.release(upstream)
            else:
                upstream.close()  # an answer before the whole body went: the connection is mid-message
        self._done.set_result(None)

    def end_stream(self) -> None:
        """Shutdown: end a watch at a chunk boundary, as if kube-apiserver had ended it (clients re-watch)."""
        if self._chunked and self.at_boundary and not self._done.done():
            self.keep_alive = False
            self._drop_upstream()
            self.conn.write(LAST_CHUNK)
            self._done.set_result(None)

    def _switch_to_tunnel(self, upstream_tail: bytes) -> None:
        if self._done.done():
            return  # the 101 was refused: its connection is closed, nothing is relayed
        upstream = self.upstream
        assert isinstance(upstream, UpstreamConnection)  # upgrades always use a dedicated HTTP/1.1 connection
        self.upstream = None
        tunnel = Tunnel(
            self.conn.transport,
            upstream,
            self.server.tunnel_closed,
            self.conn.tunnel_upstream_paused,
            description=f"{self.user_description} {self.head.target.decode('latin-1')}",
        )
        if self._audit is not None:
            tunnel.on_end = self._tunnel_ended
        self.server.tunnel_opened(tunnel)
        self.conn.start_tunnel(tunnel)
        if upstream_tail:
            tunnel.from_upstream(upstream_tail)
        if self.upgrade_tail:
            tunnel.from_client(self.upgrade_tail)
        self.keep_alive = False
        if not self._done.done():
            self._done.set_result(None)

    def on_upstream_lost(self, error: UpstreamError) -> None:
        self.upstream = None
        self.server.upstream_failed()
        if self._done.done():
            return
        if self.response_started:
            self.keep_alive = False
            self.conn.abort()  # mid-body: the client must see a broken response, not a complete one
            self._done.set_exception(_ClientGone())
        else:
            self._done.set_exception(error)

    # -- endings ----------------------------------------------------------------------------------

    def client_lost(self) -> None:
        """The client went away: stop the upstream work (a watch must not leak on the API server)."""
        self._drop_upstream()
        if not self._done.done():
            self._done.set_exception(_ClientGone())
        if self._body_waiter is not None and not self._body_waiter.done():
            self._body_waiter.set_exception(_ClientGone())

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _fail(self, exc: ProxyError) -> None:
        self._drop_upstream()
        if isinstance(exc, UpstreamError):
            self.server.upstream_failed()
        if self.response_started:
            self.keep_alive = False
            self.conn.abort()
            return
        self._log_line(admitted=None)
        if self._logged is not None:
            self._logged.reason = exc.detail
        log.warning("%s %s failed: %s", self.head.method.decode(), self.head.target.decode("latin-1"), exc.detail)
        self._respond_status(exc.code, exc.message)
        self._audit_stage("ResponseComplete", exc.code, exc.message)

    def _respond_status(self, code: int, message: str, extra: Headers | None = None) -> None:
        self._code = code
        if not self.body_done or self.head.upgrade:
            self.keep_alive = False
        self.response_started = True
        self.conn.write(status_response(code, message, close=not self.keep_alive, extra=extra))


async def _awaited(wait: Awaitable[bool]) -> None:
    with contextlib.suppress(Exception):  # a failed write is counted and logged by the auditor
        await wait
