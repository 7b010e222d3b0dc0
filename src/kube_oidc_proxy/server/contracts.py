"""What a request exchange needs from the side that carries its request, and from the server around it.

An exchange never sees a socket or a protocol: an HTTP/1.1 connection gives it one ``ClientSide`` per request
(``http1_side.Http1Side``), an HTTP/2 connection one per stream. The server is a ``ServerSide``: the decision,
the records, the limits and the connections to kube-apiserver. Both are protocols so that the modules below
them (the exchange, the relay) import neither the connection nor the server: the request path reads
downwards, and tests drive an exchange with fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from kube_oidc_proxy.audit.auditor import Auditor
from kube_oidc_proxy.clientip import TrustedProxies
from kube_oidc_proxy.gate import Admit, Gate
from kube_oidc_proxy.http1.events import Framing
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.login.responses import LoginResponse
from kube_oidc_proxy.login.routes import LoginRequest
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.server.flow import PauseReason
from kube_oidc_proxy.server.inflight import InflightLimit
from kube_oidc_proxy.server.tunnel import Tunnel
from kube_oidc_proxy.server.upstream import UpstreamConnection
from kube_oidc_proxy.server.upstreams import Upstream


class ClientSide(Protocol):
    """One request's client: where its answer goes, in whatever framing the client's protocol has."""

    peer_ip: str
    protocol: str  # "HTTP/1.1" or "HTTP/2", for the logs and metrics

    @property
    def closed(self) -> bool:
        """The client is gone: nothing more can be sent."""
        ...

    @property
    def stopping(self) -> bool:
        """The server is shutting down: streams end at their next event boundary."""
        ...

    def pause_reading(self, reason: PauseReason) -> None: ...
    def resume_reading(self, reason: PauseReason) -> None: ...

    def send_continue(self) -> None:
        """An interim 100 Continue, for a client that waits for one before its body."""
        ...

    def send_head(
        self, status: int, reason: bytes, headers: Headers, framing: Framing, *, request_read: bool, streaming: bool
    ) -> None:
        """A response head (never a 101): ``framing`` is the upstream body's, ``request_read`` whether the
        request body was read to its end, ``streaming`` whether it is a watch or a followed log."""
        ...

    def send_switch(self, reason: bytes, headers: Headers) -> None:
        """kube-apiserver's 101, as it sent it: the connection becomes a tunnel next."""
        ...

    def send_body(self, data: bytes) -> None: ...

    def send_end(self) -> None:
        """The response is complete."""
        ...

    def can_end_early(self) -> bool:
        """Whether the body can be ended before kube-apiserver ends it (a watch, at shutdown)."""
        ...

    def send_status(self, code: int, message: str, *, request_read: bool, extra: Headers | None = None) -> None:
        """A complete Kubernetes Status response of the proxy's own."""
        ...

    def send_response(self, code: int, headers: Headers, body: bytes, *, request_read: bool) -> None:
        """A complete response of the proxy's own (a login page): ``headers`` are complete (Content-Length
        included), ``body`` is empty for a HEAD request."""
        ...

    def cut(self) -> None:
        """The response cannot be completed: the client must see it broken, never complete."""
        ...

    def start_tunnel(self, upstream: UpstreamConnection, upstream_tail: bytes, description: str) -> Tunnel:
        """After a 101: splice the client and ``upstream``; bytes already read from either go first."""
        ...

    def finished(self) -> None:
        """The exchange is over: the connection may go on to its next request."""
        ...


class LoginRoutes(Protocol):
    """The browser login's pages (``login.handler.LoginPages``), answered by the proxy itself."""

    async def handle(self, request: LoginRequest) -> LoginResponse: ...


class ServerSide(Protocol):
    """The server as an exchange sees it."""

    gate: Gate
    login: LoginRoutes | None  # --login-client-id: /login and /login/* are answered here, never forwarded
    auditor: Auditor | None
    metrics: Metrics | None
    access_log: AccessLog
    inflight: InflightLimit
    trusted_proxies: TrustedProxies
    request_timeout: float

    def upstream_for(self, admitted: Admit) -> Upstream: ...
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...
    def request_shed(self, peer_ip: str, target: bytes, mutating: bool) -> None: ...
    def tunnel_opened(self, tunnel: Tunnel) -> None: ...
    def tunnel_closed(self, tunnel: Tunnel) -> None: ...
    def upstream_answered(self, status: int) -> None: ...
    def upstream_failed(self) -> None: ...


class ServedConnection(Protocol):
    """A client connection, HTTP/1.1 or HTTP/2, as the server keeps track of it."""

    peer_ip: str
    over_capacity: bool

    @property
    def watches(self) -> int:
        """Watches and followed logs being relayed on it."""
        ...

    def shutdown(self) -> None: ...
    def abort(self) -> None: ...


class ConnectionServer(ServerSide, Protocol):
    """The server as a client connection sees it."""

    def connection_opened(self, conn: Any) -> None: ...
    def connection_closed(self, conn: Any) -> None: ...
    def connection_refused(self, peer_ip: str, target: bytes | None) -> None: ...


class ClientGone(Exception):
    """The client left (or stopped sending its body): nothing more is answered."""
