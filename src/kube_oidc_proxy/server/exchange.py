"""One request's life, whatever protocol carries it: decide (gate), forward, relay the response, or switch
to a tunnel.

``run`` reads top to bottom: in-flight limit -> gate -> records -> upstream -> request body -> wait. The
client is a ``ClientSide`` (an HTTP/1.1 connection's request, or an HTTP/2 stream); the request body comes
in through ``body`` (``RequestBody``, the request direction), the response goes out through ``relay``
(``ResponseRelay``, the response direction, which also holds the exchange's ``Phase``).

With browser login on (``server.login``), ``/login`` and ``/login/*`` are answered by the proxy before all of
that: no in-flight slot, no token, nothing sent to kube-apiserver.

Failure rules: before the response head is written, any failure becomes a Kubernetes Status response; after
it, the client's response is cut, so a truncated response can never look complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Final

from kube_oidc_proxy.audit.event import audit_id_for
from kube_oidc_proxy.errors import ProxyError, UpstreamError, UpstreamTimeout
from kube_oidc_proxy.gate import Admit, Deny
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.serialize import LAST_CHUNK, chunk, request_head
from kube_oidc_proxy.login.routes import LoginRequest, is_login_path
from kube_oidc_proxy.requestinfo import is_long_running
from kube_oidc_proxy.server import auditstages
from kube_oidc_proxy.server.contracts import ClientGone, ClientSide, LoginRoutes, ServerSide
from kube_oidc_proxy.server.exchangelog import ExchangeLog
from kube_oidc_proxy.server.inflight import is_mutating
from kube_oidc_proxy.server.phase import Phase
from kube_oidc_proxy.server.relay import ResponseRelay
from kube_oidc_proxy.server.relayed import h2_request_headers, may_retry
from kube_oidc_proxy.server.requestbody import RequestBody
from kube_oidc_proxy.server.upstream import UpstreamConnection
from kube_oidc_proxy.server.upstreams import Upstream

log = logging.getLogger("kop.proxy")

TOO_MANY_REQUESTS: Final = "Too many requests, please try again later."  # kube-apiserver's words


class Exchange:
    # Slots: thousands of watches each hold one of these for hours.
    __slots__ = ("_deadline", "_inflight", "_outbound", "body", "client", "head", "log", "relay", "server", "task")

    def __init__(self, server: ServerSide, client: ClientSide, head: RequestHead) -> None:
        self.server = server
        self.client = client
        self.head = head
        self.task: asyncio.Task[None] | None = None
        self.body = RequestBody(client, done=head.framing == "none")
        self.log = ExchangeLog(server, head, client.peer_ip, client.protocol)
        self.relay = ResponseRelay(
            server,
            client,
            self.log,
            self.body,
            long_running=is_long_running(head.method, head.target),
            upgrade=head.upgrade,
        )
        self._outbound: Headers = []  # the headers for kube-apiserver, kept until answered
        self._inflight: bool | None = None  # counted against the in-flight limit: whether as mutating
        self._deadline = 0.0  # loop time by which kube-apiserver's response head is due (--request-timeout)

    @property
    def streaming(self) -> bool:
        return self.relay.streaming

    # -- the request path, top to bottom ----------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except ClientGone:
            pass
        except ProxyError as exc:
            self._fail(exc)
        except Exception:
            log.exception("internal error while proxying %s", self.head.target.decode("latin-1"))
            self.log.stages(auditstages.PANICKED, 500, "internal error")
            self._fail(ProxyError("internal error"))
        finally:
            self.relay.forget()  # whatever is still attached now (a client that left, a cancel) is not needed
            if self.log.writing:
                await self.log.settled()  # blocking audit: the exchange ends when its events are written
            if self._inflight is not None:
                self.server.inflight.leave(self._inflight)
            relay = self.relay
            self.log.answered(relay.code, long_running=relay.streaming or self.head.upgrade, watched=relay.streaming)
            self.client.finished()

    async def _run(self) -> None:
        server, head = self.server, self.head
        if server.login is not None and is_login_path(head.target):
            await self._login(server.login)
            return
        if not (self.relay.long_running or head.upgrade):
            mutating = is_mutating(head.method)
            if not server.inflight.enter(mutating):
                server.request_shed(self.client.peer_ip, head.target, mutating)
                head.headers.clear()
                self.relay.answer(429, TOO_MANY_REQUESTS, extra=[(b"Retry-After", b"1")])
                return
            self._inflight = mutating
        origin = server.trusted_proxies.origin(head.headers, self.client.peer_ip)
        audit_id = audit_id_for(head.headers)
        decision = await server.gate.decide(head, origin)
        self.log.decided(decision, origin, audit_id)
        # From here on the request's headers (with the caller's token) are not needed, and a watch can live
        # for hours. The list belongs to this request alone (the reader started a new one), so empty it.
        head.headers.clear()
        if isinstance(decision, Deny):
            self.log.line(admitted=None)
            log.info("rejected %s %s: %s", head.method.decode(), head.target.decode("latin-1"), decision.reason)
            self.relay.answer(decision.code, decision.message)
            self.log.stages(auditstages.denied(decision.code), decision.code, decision.message)
            return
        self.log.line(admitted=decision)
        self._check_client()  # it left while the gate decided: nothing goes upstream
        if head.upgrade:  # who and what, should its tunnel be cut at shutdown
            self.relay.description = f"{decision.user.username} {head.target.decode('latin-1')}"
        connections = self._admit(decision)
        del decision
        if self.log.audited:
            self.log.stages(auditstages.ADMITTED)
            await self.log.written()  # blocking audit: the event is written before kube-apiserver hears of it
        self._check_client()
        if head.upgrade:
            await self._upgrade(connections)
        else:
            await self._forward(connections)

    async def _login(self, login: LoginRoutes) -> None:
        """A login page, answered here whatever the request holds."""
        head = self.head
        self.log.own_page = True
        headers = head.headers
        hosts = [value for name, value in headers if name == b"host"]
        request = LoginRequest(
            method=head.method,
            target=head.target,
            host=hosts[0] if len(hosts) == 1 else None,
            cookies=tuple(value for name, value in headers if name == b"cookie"),
            client_ip=self.server.trusted_proxies.origin(headers, self.client.peer_ip).client_ip,
        )
        headers.clear()  # as for any request: its headers are not kept while it is answered
        answer = await login.handle(request)
        self.relay.respond(answer.status, answer.headers, b"" if head.method == b"HEAD" else answer.body)

    def _admit(self, admit: Admit) -> Upstream:
        """The decision's headers, one Audit-ID (kube-apiserver adopts it) and its connections' credential."""
        connections = self.server.upstream_for(admit)
        credential = connections.credential_headers()
        self._outbound = [*admit.headers, (b"audit-id", self.log.audit_id.encode()), *credential]
        self.relay.forwarding(connections, self._outbound, own_credential=bool(credential))
        return connections

    def _check_client(self) -> None:
        if self.relay.phase.over or self.client.closed:
            raise ClientGone

    async def _forward(self, connections: Upstream) -> None:
        head = self.head
        h2 = connections.h2
        # A stream carries no request body here: a long-running request with one goes over HTTP/1.1 whole.
        long_running = self.relay.long_running and head.framing == "none"
        if long_running and h2 is not None and h2.available and await self._forward_h2(connections):
            return
        retried = False
        while True:
            upstream = await self._within_request_timeout(connections.pool.acquire())
            self._attach(connections, upstream, head_only=head.method == b"HEAD")
            upstream.write(request_head(head.method, head.target, self._outbound))
            if head.expect_continue and not self.body.done:
                self.client.send_continue()
            try:
                if head.framing != "none":
                    await self._send_body(upstream)
                await self.relay.wait(self._remaining())
                return
            except UpstreamError as exc:
                relay = self.relay
                if (
                    retried
                    or relay.phase is not Phase.FORWARDING
                    or not may_retry(
                        head.method,
                        head.framing,
                        reused=upstream.reused,
                        received=upstream.received,
                        timed_out=isinstance(exc, UpstreamTimeout),
                    )
                ):
                    raise
                retried = True  # once: this was a keep-alive connection the server had closed
                relay.retry()

    async def _forward_h2(self, connections: Upstream) -> bool:
        """Send a long-running request as a stream on a shared HTTP/2 connection; False if unavailable."""
        h2 = connections.h2
        assert h2 is not None
        head = self.head
        headers = h2_request_headers(head.method, head.target, connections.target.authority.encode(), self._outbound)
        stream = await h2.open_stream(self.relay, headers)
        del headers
        if stream is None:
            return False
        self.relay.attach(stream)
        self._outbound = []  # sent, and a stream is never sent again: a watch does not keep them for hours
        self._check_client()  # it left while a connection was found: the stream is reset (run() drops it)
        await self.relay.wait(self._remaining())
        return True

    async def _upgrade(self, connections: Upstream) -> None:
        upstream = await self._within_request_timeout(connections.pool.connect())
        self._attach(connections, upstream, head_only=False)
        upstream.write(request_head(self.head.method, self.head.target, self._outbound))
        await self.relay.wait(self._remaining())

    def _attach(self, connections: Upstream, upstream: UpstreamConnection, *, head_only: bool) -> None:
        if self.client.closed or self.relay.phase.over:
            connections.pool.release(upstream)  # nothing is sent for a client that left meanwhile
            raise ClientGone
        upstream.begin(self.relay, head_only=head_only)
        self.relay.attach(upstream)

    async def _within_request_timeout(self, connecting: Awaitable[UpstreamConnection]) -> UpstreamConnection:
        """--request-timeout counts from here: a kube-apiserver that accepts connections but never finishes
        the TLS handshake times out as one that never sends its response head (not after the 10 s connect
        limit)."""
        timeout = self.server.request_timeout
        if not timeout:
            return await connecting
        if not self._deadline:
            self._deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await asyncio.wait_for(connecting, self._remaining())
        except TimeoutError:
            raise UpstreamTimeout(
                "kube-apiserver did not answer in time", "connecting timed out (--request-timeout)"
            ) from None

    def _remaining(self) -> float | None:
        """What is left of --request-timeout for the response head (None: no limit)."""
        timeout = self.server.request_timeout
        if not timeout:
            return None
        if not self._deadline:
            return timeout
        return max(self._deadline - asyncio.get_running_loop().time(), 0.0)

    async def _send_body(self, upstream: UpstreamConnection) -> None:
        chunked = self.head.framing == "chunked"
        body = self.body
        while (data := await body.next()) is not None:  # ClientGone: run()'s end drops the upstream
            self.log.capture_request(data)
            if chunked:
                upstream.writelines(chunk(data))
            else:
                upstream.write(data)
            await upstream.drain()
            if upstream.closed:
                return  # the upstream answered early or went away: the response path reports it
        if chunked:
            upstream.write(LAST_CHUNK)
        body.sent = True

    # -- from the client side ---------------------------------------------------------------------

    def client_lost(self) -> None:
        """The client went away: stop the upstream work (a watch must not leak on the API server)."""
        self.relay.client_lost()
        self.body.client_lost()

    def end_stream(self) -> None:
        """Shutdown: a watch ends at its next event boundary."""
        self.relay.end_stream()

    # -- endings ----------------------------------------------------------------------------------

    def _fail(self, exc: ProxyError) -> None:
        relay = self.relay
        relay.drop_upstream()
        if isinstance(exc, UpstreamError):
            self.server.upstream_failed()
        if relay.phase.answered:
            relay.cut()
            return
        self.log.line(admitted=None, failure=exc.detail)
        log.warning("%s %s failed: %s", self.head.method.decode(), self.head.target.decode("latin-1"), exc.detail)
        relay.answer(exc.code, exc.message)
        self.log.stages(auditstages.ENDED, exc.code, exc.message)
