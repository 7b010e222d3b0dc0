"""A real ``Exchange`` driven without sockets: a fake client side records what the client gets, a fake
upstream connection records what kube-apiserver gets and is fed its answer as events."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Coroutine
from typing import Any, cast

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.clientip import NO_TRUSTED_PROXIES
from kube_oidc_proxy.errors import UpstreamError
from kube_oidc_proxy.gate import Deny, Impersonate
from kube_oidc_proxy.http1.events import MESSAGE_END, Body, RequestHead, ResponseHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.login.responses import LoginResponse
from kube_oidc_proxy.login.routes import LoginRequest
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.server.exchange import Exchange
from kube_oidc_proxy.server.inflight import InflightLimit
from kube_oidc_proxy.server.phase import Phase
from kube_oidc_proxy.server.relay import ResponseRelay
from tests.support.waiting import until

ALICE = UserInfo("alice", groups=("dev",))


def request(method: bytes = b"GET", target: bytes = b"/api/v1/pods") -> RequestHead:
    return RequestHead(method, target, "1.1", [(b"host", b"proxy")], True, False, "none", None, False, 40)


def response(status: int = 200, framing: str = "length") -> ResponseHead:
    length = 5 if framing == "length" else None
    return ResponseHead(status, b"", "1.1", [(b"Content-Type", b"text/plain")], True, cast(Any, framing), length)


class FakeClient:
    peer_ip = "192.0.2.1"
    protocol = "HTTP/1.1"
    closed = False
    stopping = False

    def __init__(self) -> None:
        self.got: list[tuple[str, Any]] = []
        self.finished_count = 0

    def pause_reading(self, reason: str) -> None:
        self.got.append(("pause", reason))

    def resume_reading(self, reason: str) -> None:
        pass

    def send_continue(self) -> None:
        self.got.append(("continue", None))

    def send_head(self, status: int, reason: bytes, headers: Headers, framing: str, **_: bool) -> None:
        self.got.append(("head", status))

    def send_switch(self, reason: bytes, headers: Headers) -> None:
        self.got.append(("switch", 101))

    def send_body(self, data: bytes) -> None:
        self.got.append(("body", data))

    def send_end(self) -> None:
        self.got.append(("end", None))

    def can_end_early(self) -> bool:
        return True

    def send_status(self, code: int, message: str, **_: Any) -> None:
        self.got.append(("status", code))

    def send_response(self, code: int, headers: Headers, body: bytes, *, request_read: bool) -> None:
        self.got.append(("response", (code, body, request_read)))

    def cut(self) -> None:
        self.got.append(("cut", None))

    def finished(self) -> None:
        self.finished_count += 1


class FakeUpstream:
    def __init__(self, *, reused: bool = False) -> None:
        self.written = b""
        self.sink: ResponseRelay | None = None
        self.reused = reused
        self.received = False
        self.closed = False
        self.read_paused = False

    def begin(self, sink: ResponseRelay, *, head_only: bool) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, data: list[bytes]) -> None:
        self.written += b"".join(data)

    async def drain(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False

    def close(self) -> None:
        self.closed = True


class FakePool:
    def __init__(self, *upstreams: FakeUpstream) -> None:
        self.ready = list(upstreams)
        self.released: list[FakeUpstream] = []

    async def acquire(self) -> FakeUpstream:
        return self.ready.pop(0)

    def release(self, upstream: FakeUpstream) -> None:
        assert not upstream.read_paused, "released while paused"
        self.released.append(upstream)


class FakeConnections:
    h2 = None

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool

    def credential_headers(self) -> Headers:
        return [(b"authorization", b"Bearer proxy")]

    def credential_refused(self) -> None:
        pass


class FakeGate:
    def __init__(self, decision: Impersonate | Deny) -> None:
        self.decision = decision

    async def decide(self, head: RequestHead, origin: object) -> Impersonate | Deny:
        return self.decision


class FakeServer:
    auditor = None
    metrics = None
    login: Any = None
    trusted_proxies = NO_TRUSTED_PROXIES
    request_timeout = 0.0

    def __init__(self, decision: Impersonate | Deny, pool: FakePool) -> None:
        self.gate = FakeGate(decision)
        self.access_log = AccessLog(io.StringIO())
        self.inflight = InflightLimit(10, 10)
        self.connections = FakeConnections(pool)
        self.failures = 0

    def upstream_for(self, admitted: object) -> FakeConnections:
        return self.connections

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro)

    def request_shed(self, peer_ip: str, target: bytes, mutating: bool) -> None:
        pass

    def upstream_answered(self, status: int) -> None:
        pass

    def upstream_failed(self) -> None:
        self.failures += 1


def phase_of(exchange: Exchange) -> Phase:
    return exchange.relay.phase


ADMITTED = Impersonate(ALICE, [(b"host", b"api"), (b"impersonate-user", b"alice")])


async def started(decision: Impersonate | Deny, *upstreams: FakeUpstream) -> tuple[Exchange, FakeClient, FakePool]:
    pool = FakePool(*upstreams)
    client = FakeClient()
    exchange = Exchange(cast(Any, FakeServer(decision, pool)), cast(Any, client), request())
    exchange.task = asyncio.get_running_loop().create_task(exchange.run())
    for _ in range(5):
        await asyncio.sleep(0)
    return exchange, client, pool


async def test_a_denied_request_is_answered_by_the_proxy_and_nothing_goes_upstream() -> None:
    upstream = FakeUpstream()
    exchange, client, pool = await started(Deny(401, "Unauthorized", "no token", failure=cast(Any, "x")), upstream)
    assert exchange.task is not None and exchange.task.done()
    assert client.got == [("status", 401)]
    assert exchange.relay.phase is Phase.COMPLETE and client.finished_count == 1
    assert upstream.written == b"" and pool.ready == [upstream]


async def test_an_answer_is_relayed_in_order_and_its_connection_goes_back_to_the_pool() -> None:
    upstream = FakeUpstream()
    exchange, client, pool = await started(ADMITTED, upstream)
    assert upstream.written.startswith(b"GET /api/v1/pods HTTP/1.1\r\n")
    assert b"authorization: Bearer proxy\r\n" in upstream.written
    assert phase_of(exchange) is Phase.FORWARDING
    exchange.relay.on_response_events([response(), Body(b"hello"), MESSAGE_END])
    assert exchange.task is not None
    await exchange.task
    assert client.got == [("head", 200), ("body", b"hello"), ("end", None)]
    assert pool.released == [upstream] and client.finished_count == 1
    assert exchange.relay.phase is Phase.COMPLETE


async def test_a_client_that_stops_reading_pauses_kube_apiserver_and_the_pool_gets_it_back_reading() -> None:
    upstream = FakeUpstream()
    exchange, _client, pool = await started(ADMITTED, upstream)
    exchange.relay.on_response_events([response(), Body(b"he")])
    exchange.relay.client_full(True)
    assert upstream.read_paused
    exchange.relay.on_response_events([Body(b"llo"), MESSAGE_END])  # the read that filled the client ends it
    assert exchange.task is not None
    await exchange.task
    assert pool.released == [upstream] and not upstream.read_paused


async def test_kube_apiserver_lost_mid_body_cuts_the_response_and_its_connection_is_not_reused() -> None:
    upstream = FakeUpstream()
    exchange, client, pool = await started(ADMITTED, upstream)
    exchange.relay.on_response_events([response(), Body(b"he")])
    exchange.relay.on_upstream_lost(UpstreamError("gone", "closed"))
    assert exchange.task is not None
    await exchange.task
    assert client.got[-1] == ("cut", None) and ("end", None) not in client.got
    assert exchange.relay.phase is Phase.BROKEN and pool.released == []


async def test_a_stale_keep_alive_connection_is_retried_once_on_another() -> None:
    stale, fresh = FakeUpstream(reused=True), FakeUpstream()
    exchange, client, _pool = await started(ADMITTED, stale, fresh)
    exchange.relay.on_upstream_lost(UpstreamError("gone", "closed before any byte"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert fresh.written == stale.written != b""
    exchange.relay.on_response_events([response(), Body(b"hello"), MESSAGE_END])
    assert exchange.task is not None
    await exchange.task
    assert client.got == [("head", 200), ("body", b"hello"), ("end", None)]


async def test_kube_apiserver_lost_before_any_answer_on_a_new_connection_is_a_502_status() -> None:
    upstream = FakeUpstream()
    exchange, client, _pool = await started(ADMITTED, upstream)
    exchange.relay.on_upstream_lost(UpstreamError("kube-apiserver closed the connection", "closed"))
    assert exchange.task is not None
    await exchange.task
    assert client.got == [("status", 502)] and exchange.relay.phase is Phase.COMPLETE


async def test_a_client_that_leaves_mid_response_stops_the_upstream_work() -> None:
    upstream = FakeUpstream()
    exchange, client, pool = await started(ADMITTED, upstream)
    exchange.relay.on_response_events([response(framing="chunked"), Body(b"event")])
    exchange.client_lost()
    assert exchange.task is not None
    await exchange.task
    assert upstream.closed and pool.released == []
    assert exchange.relay.phase is Phase.CLIENT_GONE and client.finished_count == 1


class FakeLogin:
    def __init__(self) -> None:
        self.asked: list[LoginRequest] = []

    async def handle(self, request: LoginRequest) -> LoginResponse:
        self.asked.append(request)
        return LoginResponse(200, [(b"Content-Length", b"4")], b"page")


def login_request(method: bytes, target: bytes, headers: Headers) -> RequestHead:
    return RequestHead(method, target, "1.1", headers, True, False, "none", None, False, 40)


async def login_exchange(head: RequestHead, *, inflight: int = 10) -> tuple[Exchange, FakeClient, FakeLogin, FakePool]:
    pool = FakePool(FakeUpstream())
    server = FakeServer(ADMITTED, pool)
    server.inflight = InflightLimit(inflight, inflight)
    server.login = FakeLogin()
    client = FakeClient()
    exchange = Exchange(cast(Any, server), cast(Any, client), head)
    await exchange.run()
    return exchange, client, server.login, pool


async def test_a_login_page_is_answered_by_the_proxy_without_the_gate_the_inflight_limit_or_kube_apiserver() -> None:
    cookie = b"__Host-kop-login-0123456789abcdef=" + b"a" * 43
    head = login_request(b"GET", b"/login/callback?code=c&state=s", [(b"host", b"proxy:443"), (b"cookie", cookie)])
    exchange, client, login, pool = await login_exchange(head, inflight=0)
    assert client.got == [("response", (200, b"page", True))]
    target = b"/login/callback?code=c&state=s"
    assert login.asked == [LoginRequest(b"GET", target, b"proxy:443", (cookie,), "192.0.2.1")]
    assert head.headers == [], "the request's headers are emptied, as for any request"
    assert exchange.relay.phase is Phase.COMPLETE and client.finished_count == 1
    assert len(pool.ready) == 1, "nothing went upstream"


async def test_a_head_request_for_a_login_page_gets_its_headers_without_the_body() -> None:
    _, client, _, _ = await login_exchange(login_request(b"HEAD", b"/login", [(b"host", b"proxy")]))
    assert client.got == [("response", (200, b"", True))]


async def test_two_host_headers_reach_the_login_as_none() -> None:
    head = login_request(b"GET", b"/login", [(b"host", b"a"), (b"host", b"b")])
    _, _, login, _ = await login_exchange(head)
    assert login.asked[0].host is None


async def test_paths_that_only_look_like_login_paths_go_through_the_gate() -> None:
    for target in (b"/loginx", b"/api/login", b"/login%2Fcallback", b"/Login", b"/api/v1/namespaces/login"):
        upstream = FakeUpstream()
        server = FakeServer(ADMITTED, FakePool(upstream))
        server.login = FakeLogin()
        exchange = Exchange(cast(Any, server), cast(Any, FakeClient()), login_request(b"GET", target, []))
        task = asyncio.get_running_loop().create_task(exchange.run())

        def forwarded(up: FakeUpstream = upstream) -> bool:
            return bool(up.written)

        await until(forwarded, f"{target!r} forwarded")
        assert server.login.asked == [], target
        assert upstream.written.startswith(b"GET " + target + b" HTTP/1.1\r\n"), target
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
