"""The response direction of an exchange: kube-apiserver's answer on its way to the client.

The upstream connection (or HTTP/2 stream) calls ``on_response_events`` synchronously, in the order bytes
arrive, and each piece goes to the client side at once: a watch event is never held back. When the client
stops taking what it is sent, the relay pauses reading kube-apiserver until it takes again (``client_full``:
the response direction's one reason to pause, so a flag rather than a ``FlowControl``).

The relay also holds the exchange's ``Phase``: every change goes through ``phase.advance``. The exchange's
coroutine waits in ``wait`` until the phase leaves ``FORWARDING``/``RESPONDING``, or until a failure before
the response head, which it answers with a Status (or retries, when ``relayed.may_retry`` says so).
"""

from __future__ import annotations

import asyncio
import logging
import time

from kube_oidc_proxy.errors import UnaskedSwitch, UpstreamError, UpstreamTimeout
from kube_oidc_proxy.http1.events import Body, ChunkEnd, MessageEnd, ResponseEvent, ResponseHead, Upgraded
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.server import auditstages
from kube_oidc_proxy.server.contracts import ClientGone, ClientSide, ServerSide
from kube_oidc_proxy.server.exchangelog import ExchangeLog
from kube_oidc_proxy.server.phase import Event, Phase, advance
from kube_oidc_proxy.server.relayed import relayed_head
from kube_oidc_proxy.server.requestbody import RequestBody
from kube_oidc_proxy.server.upstream import UpstreamConnection
from kube_oidc_proxy.server.upstream_h2 import H2Stream
from kube_oidc_proxy.server.upstreams import Upstream
from kube_oidc_proxy.upgrade import switch_problem

log = logging.getLogger("kop.proxy")

UpstreamLeg = UpstreamConnection | H2Stream


class ResponseRelay:
    __slots__ = (
        "_asked",
        "_at_boundary",
        "_body",
        "_client",
        "_client_full",
        "_connections",
        "_log",
        "_own_credential",
        "_server",
        "_settled",
        "code",
        "description",
        "long_running",
        "phase",
        "sent_at",
        "streaming",
        "upgrade",
        "upstream",
    )

    def __init__(
        self,
        server: ServerSide,
        client: ClientSide,
        log: ExchangeLog,
        body: RequestBody,
        *,
        long_running: bool,
        upgrade: bool,
    ) -> None:
        self._server = server
        self._client = client
        self._log = log
        self._body = body
        self.long_running = long_running
        self.upgrade = upgrade
        self.phase = Phase.DECIDING
        self._settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client_full = False  # the client is not taking what it is sent: kube-apiserver is not read
        self._connections: Upstream | None = None
        self._own_credential = False  # the proxy's own token went upstream (not the caller's)
        self._asked: Headers | None = None  # the request's headers as sent, until answered (the 101 check)
        self.upstream: UpstreamLeg | None = None
        self.code = 0
        self.sent_at = 0.0  # when the request went upstream, for the upstream latency metric
        self.streaming = False  # a watch or a followed log: ended at an event boundary on shutdown
        self._at_boundary = True
        self.description = ""  # who and what, for a tunnel cut at shutdown

    # -- the exchange's side ------------------------------------------------------------------------

    def _advance(self, event: Event) -> None:
        self.phase = advance(self.phase, event)
        if self.phase.over and not self._settled.done():
            self._settled.set_result(None)

    def forwarding(self, connections: Upstream, asked: Headers, *, own_credential: bool) -> None:
        self._connections = connections
        self._asked = asked
        self._own_credential = own_credential
        self._advance(Event.FORWARD)

    def attach(self, upstream: UpstreamLeg) -> None:
        """The connection or stream that carries the request; it reports to ``on_response_events``."""
        self.upstream = upstream
        self.sent_at = time.monotonic()
        if self._client_full:
            upstream.pause_reading()

    async def wait(self, timeout: float | None) -> None:
        """Until the exchange is over; a failure before the response head is raised (and timing out is one)."""
        timer = None if timeout is None else asyncio.get_running_loop().call_later(timeout, self._timed_out)
        try:
            await self._settled
        finally:
            if timer is not None:
                timer.cancel()
        if self.phase is Phase.CLIENT_GONE:
            raise ClientGone

    def forget(self) -> None:
        """At the exchange's end: a failure nobody awaited (the client left first) is no error."""
        self.drop_upstream()
        if self._settled.done() and not self._settled.cancelled():
            self._settled.exception()

    def retry(self) -> None:
        self._settled = asyncio.get_running_loop().create_future()
        self._advance(Event.RETRY)

    def answer(self, code: int, message: str, extra: Headers | None = None) -> None:
        """The proxy's own Status instead of kube-apiserver's answer (unless the client has gone)."""
        if self.phase.over:
            return
        self.code = code
        self._client.send_status(code, message, request_read=self._body.done and not self.upgrade, extra=extra)
        self._advance(Event.ANSWER)

    def respond(self, code: int, headers: Headers, body: bytes) -> None:
        """A complete response of the proxy's own that is not a Status (a login page), unless the client has
        gone; nothing went upstream."""
        if self.phase.over:
            return
        self.code = code
        self._client.send_response(code, headers, body, request_read=self._body.done and not self.upgrade)
        self._advance(Event.ANSWER)

    def cut(self) -> None:
        """The response cannot be finished: the client sees it broken."""
        if self.phase.over:
            return
        self.drop_upstream()
        self._client.cut()
        self._advance(Event.CUT)

    def client_lost(self) -> None:
        """The client went away: stop the upstream work (a watch must not leak on the API server)."""
        self.drop_upstream()
        self._advance(Event.CLIENT_LOST)  # settles the wait, which raises ClientGone

    def client_full(self, full: bool) -> None:
        """The client stopped (or started again) taking what it is sent."""
        if full == self._client_full:
            return
        self._client_full = full
        if self.upstream is not None:
            if full:
                self.upstream.pause_reading()
            else:
                self.upstream.resume_reading()

    def end_stream(self) -> None:
        """Shutdown: end a watch at an event boundary, as if kube-apiserver had ended it (clients re-watch)."""
        if self.phase is Phase.RESPONDING and self.streaming and self._at_boundary and self._client.can_end_early():
            self.drop_upstream()
            self._client.send_end()
            self._advance(Event.RESPONSE_END)

    def drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close()

    def _timed_out(self) -> None:
        if self.phase is Phase.FORWARDING and not self._settled.done():
            self.drop_upstream()
            timeout = UpstreamTimeout("kube-apiserver did not answer in time", "response head timed out")
            self._settled.set_exception(timeout)

    # -- the upstream's side (ResponseSink) ---------------------------------------------------------

    def on_response_events(self, events: list[ResponseEvent]) -> None:
        for event in events:
            if type(event) is Body:
                self._relay_body(event.data)
            elif type(event) is ChunkEnd:
                self._at_boundary = True
                if self.streaming and self._client.stopping:
                    self.end_stream()
                    return
            elif type(event) is ResponseHead:
                self._relay_head(event)
            elif type(event) is MessageEnd:
                self._complete()
            elif type(event) is Upgraded:
                self._switch_to_tunnel(event.tail)

    def on_upstream_lost(self, error: UpstreamError) -> None:
        self.upstream = None
        self._server.upstream_failed()
        if self.phase is Phase.RESPONDING:
            self.cut()  # mid-body: the client must see a broken response, not a complete one
        elif not self._settled.done():
            self._settled.set_exception(error)

    def _relay_head(self, response: ResponseHead) -> None:
        if self.phase is not Phase.FORWARDING or self._settled.done():
            return
        asked, self._asked = self._asked, None  # answered: no retry from here on
        self._server.upstream_answered(response.status)
        if response.status == 401 and self._own_credential and self._connections is not None:
            self._connections.credential_refused()  # not a caller's token, not a pod's own 401
        if response.status == 101:
            problem = switch_problem(asked or [], response.headers) if self.upgrade else "no upgrade was asked"
            if problem is not None:  # a 502 Status; the upstream connection is closed (and an upgrade's client's)
                self.drop_upstream()
                self._settled.set_exception(UnaskedSwitch(problem))
                return
            self.code = 101
            self._client.send_switch(response.reason, response.headers)
            self._advance(Event.RESPONSE_HEAD)
            self._log.relayed(101, self.sent_at, long_running=True)
            return
        relayed = relayed_head(response.headers, self._log.audit_id.encode())
        self.streaming = relayed.watch or self.long_running
        self.code = response.status
        self._log.relayed(response.status, self.sent_at, long_running=self.streaming)
        self._client.send_head(
            response.status,
            response.reason,
            relayed.headers,
            response.framing,
            request_read=self._body.done and not self.upgrade,
            streaming=self.streaming,
        )
        self._advance(Event.RESPONSE_HEAD)

    def _relay_body(self, data: bytes) -> None:
        if self.phase is not Phase.RESPONDING:
            return
        if not self.streaming:
            self._log.capture_response(data)
        self._at_boundary = False
        self._client.send_body(data)

    def _complete(self) -> None:
        if self.phase is not Phase.RESPONDING:
            return
        self._client.send_end()
        self._log.stages(auditstages.ENDED)
        upstream, self.upstream = self.upstream, None
        if isinstance(upstream, H2Stream):
            upstream.finished()
        elif upstream is not None:
            assert self._connections is not None
            if self._body.sent:
                if self._client_full:
                    upstream.resume_reading()  # the pool takes back only a connection that reads
                self._connections.pool.release(upstream)
            else:
                upstream.close()  # an answer before the whole body went: the connection is mid-message
        self._advance(Event.RESPONSE_END)

    def _switch_to_tunnel(self, upstream_tail: bytes) -> None:
        if self.phase is not Phase.RESPONDING:
            return  # the 101 was refused: its connection is closed, nothing is relayed
        upstream = self.upstream
        assert isinstance(upstream, UpstreamConnection)  # upgrades always use a dedicated HTTP/1.1 connection
        self.upstream = None
        tunnel = self._client.start_tunnel(upstream, upstream_tail, self.description)
        if self._log.audited:
            tunnel.on_end = self._log.tunnel_ended
        self._server.tunnel_opened(tunnel)
        self._advance(Event.SWITCH)
