"""The proxy server: the listener, the set of live connections and tasks, and the graceful stop.

Shutdown runs in stages (as uvicorn's): stop accepting; idle connections close now; busy ones close
after their response; watches end at the next event boundary (clients re-watch elsewhere); after
``grace`` seconds whatever is left, exec/attach/port-forward tunnels included, is cut, each with a log
line naming the user and the path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Coroutine
from typing import Any, Final

from kube_oidc_proxy.audit.auditor import Auditor
from kube_oidc_proxy.clientip import NO_TRUSTED_PROXIES, TrustedProxies
from kube_oidc_proxy.config import (
    DEFAULT_MAX_CLIENT_CONNECTIONS,
    DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
    DEFAULT_MAX_REQUESTS_INFLIGHT,
)
from kube_oidc_proxy.gate import Admit, Gate, Impersonate, PassThrough
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.server.contracts import LoginRoutes, ServedConnection
from kube_oidc_proxy.server.h2_limits import DEFAULT_MAX_STREAMS
from kube_oidc_proxy.server.inflight import InflightLimit
from kube_oidc_proxy.server.negotiated import Negotiated
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstreams import AsCaller, AsProxy, Upstream

log = logging.getLogger("kop.server")

TLS_HANDSHAKE_TIMEOUT_SECONDS: Final = 10.0
# Connections over --max-client-connections whose request is still answered with a 503 (at least this many,
# or a sixteenth of the limit); beyond those a new connection is closed at once.
OVER_CAPACITY_MINIMUM: Final = 16
REFUSAL_LOG_INTERVAL_SECONDS: Final = 10.0
BACKLOG: Final = 2048


class ProxyServer:
    def __init__(
        self,
        *,
        gate: Gate,
        as_proxy: AsProxy,
        as_caller: AsCaller,
        access_log: AccessLog,
        request_timeout: float = 0.0,
        auditor: Auditor | None = None,
        metrics: Metrics | None = None,
        trusted_proxies: TrustedProxies = NO_TRUSTED_PROXIES,
        max_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS,
        inflight: InflightLimit | None = None,
        http2_max_streams: int = 0,
        login: LoginRoutes | None = None,
    ) -> None:
        self.login = login
        self.http2_max_streams = http2_max_streams or DEFAULT_MAX_STREAMS
        self.trusted_proxies = trusted_proxies
        self.max_connections = max_connections
        self.inflight = inflight or InflightLimit(DEFAULT_MAX_REQUESTS_INFLIGHT, DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)
        self._shed_logged = -float("inf")
        self.auditor = auditor
        self.metrics = metrics
        self.gate = gate
        self.as_proxy = as_proxy
        self.as_caller = as_caller
        self.access_log = access_log
        self.request_timeout = request_timeout
        self.connections: set[ServedConnection] = set()
        self.tunnels: set[Tunnel] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_upstream_answer = -float("inf")  # monotonic time of the last non-401 upstream answer
        self.stopping = False
        self.terminating_until: float | None = None  # monotonic end of --shutdown-delay-duration, once signalled
        self._server: asyncio.Server | None = None
        self._refusal_logged = -REFUSAL_LOG_INTERVAL_SECONDS
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    # lifecycle ------------------------------------------------------------------------------------

    async def start(
        self, host: str, port: int, ssl_context: ssl.SSLContext, *, reuse_port: bool = False
    ) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Negotiated(self, self.http2_max_streams),
            host=host or None,
            port=port,
            ssl=ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_SECONDS,
            backlog=BACKLOG,
            reuse_port=reuse_port,
            family=socket.AF_UNSPEC,
        )
        return [s.getsockname()[:2] for s in self._server.sockets]

    def terminate_after(self, delay: float) -> None:
        """A stop is coming in ``delay`` seconds: keep serving, but let readiness say so."""
        self.terminating_until = time.monotonic() + delay

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace)
        except TimeoutError:
            for tunnel in list(self.tunnels):
                log.warning(
                    "shutting down: closing a stream open for %.0fs (%s)",
                    time.monotonic() - tunnel.started,
                    tunnel.description,
                )
            for conn in list(self.connections):
                conn.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.as_proxy.close()
        self.as_caller.close()

    # bookkeeping used by connections and exchanges ------------------------------------------------

    def upstream_for(self, admitted: Admit) -> Upstream:
        """The connections for a decision: the proxy's identity only for an identity the proxy decided."""
        match admitted:
            case Impersonate():
                return self.as_proxy
            case PassThrough():
                return self.as_caller

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def connection_opened(self, conn: ServedConnection) -> None:
        over = len(self.connections) - self.max_connections + 1
        self.connections.add(conn)
        if self.metrics is not None:
            self.metrics.connections.inc()
        self._all_closed.clear()
        if self.stopping:
            conn.shutdown()
        elif over > 0:
            if over > max(OVER_CAPACITY_MINIMUM, self.max_connections // 16):
                self.connection_refused(conn.peer_ip, None)
                conn.abort()  # too many even to answer: the client sees the connection closed
            else:
                conn.over_capacity = True  # its request is answered 503, with Retry-After

    def connection_refused(self, peer_ip: str, target: bytes | None) -> None:
        """A connection over --max-client-connections: an AuFail line, and the metric."""
        self.access_log.refused(peer_ip, 503, "too many client connections", target or b"-")
        if self.metrics is not None:
            self.metrics.connections_refused.inc()
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL_SECONDS:
            self._refusal_logged = now
            log.warning("refusing client connections: %d open, --max-client-connections is %d",
                        len(self.connections), self.max_connections)  # fmt: skip

    def request_shed(self, peer_ip: str, target: bytes, mutating: bool) -> None:
        """A request over the in-flight limit of its kind: an AuFail line, the metric, a warning now and then."""
        self.access_log.refused(peer_ip, 429, "too many requests in flight", target)
        kind = "mutating" if mutating else "readOnly"
        if self.metrics is not None:
            self.metrics.requests_shed.labels(kind).inc()
        now = time.monotonic()
        if now - self._shed_logged >= REFUSAL_LOG_INTERVAL_SECONDS:
            self._shed_logged = now
            limit = self.inflight.max_mutating if mutating else self.inflight.max_reads
            flag = "--max-mutating-requests-inflight" if mutating else "--max-requests-inflight"
            log.warning("answering 429: %s requests in flight are at %s=%d", kind, flag, limit)

    def connection_closed(self, conn: ServedConnection) -> None:
        self.connections.discard(conn)
        if self.metrics is not None:
            self.metrics.connections.dec()
        if not self.connections:
            self._all_closed.set()

    def tunnel_opened(self, tunnel: Tunnel) -> None:
        self.tunnels.add(tunnel)
        if self.metrics is not None:
            self.metrics.tunnels.inc()

    def tunnel_closed(self, tunnel: Tunnel) -> None:
        self.tunnels.discard(tunnel)
        if self.metrics is not None:
            self.metrics.tunnels.dec()
            self.metrics.tunnel_flow(*tunnel.uncounted())

    def count_tunnel_bytes(self) -> None:
        """The bytes open tunnels moved since they were last counted (every few seconds and at a scrape),
        summed first: one counter increment per direction, however many tunnels (each costs a lock, and
        with --workers a write to the shared file)."""
        if self.metrics is not None and self.tunnels:
            up = down = 0
            for tunnel in self.tunnels:
                moved_up, moved_down = tunnel.uncounted()
                up += moved_up
                down += moved_down
            self.metrics.tunnel_flow(up, down)

    def upstream_answered(self, status: int) -> None:
        if status != 401:
            self.last_upstream_answer = time.monotonic()

    def upstream_failed(self) -> None:
        """A request found kube-apiserver refusing, silent or gone: readiness asks its /readyz again at the
        next probe instead of trusting an answer from before."""
        self.last_upstream_answer = -float("inf")

    @property
    def active_watches(self) -> int:
        return sum(c.watches for c in self.connections)
