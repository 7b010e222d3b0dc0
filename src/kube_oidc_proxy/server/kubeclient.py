"""The proxy's own calls to kube-apiserver (SubjectAccessReview, TokenReview, the readiness check): small
JSON requests over the same upstream pool, with the proxy's credentials, retried once after a 401 with a
re-read token. Reviews are rate-limited like client-go (``--kube-client-qps``/``--kube-client-burst``),
each caller to its share (``reviewbudget``); the wait for a slot counts against the review's timeout.

Every failure names the request and the peer (``GET https://10.0.0.1:6443/readyz: connect to ...``), in
the detail of the ``UpstreamError`` that ``request`` raises and in the message of a ``ReviewError``: those
texts reach the log and the readiness check, where "cannot reach kube-apiserver" alone would not say which
address was tried. A review kube-apiserver refused names its Status ``message`` (``subjectaccessreviews... is
forbidden: User "system:serviceaccount:..." cannot create resource ...``): the RBAC the proxy lacks.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

from kube_oidc_proxy.authn.quoting import message
from kube_oidc_proxy.authz.checker import ReviewError, ReviewNotSent
from kube_oidc_proxy.authz.review import allowed_by
from kube_oidc_proxy.errors import UpstreamError, UpstreamTimeout
from kube_oidc_proxy.http1.events import Body, MessageEnd, ResponseEvent, ResponseHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.serialize import request_head
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.server.reviewbudget import Caller, ReviewBudget, Throttled, network, user
from kube_oidc_proxy.server.upstreams import AsProxy

TIMEOUT_SECONDS: Final = 10.0  # the Go proxy's TokenReview timeout
MAX_RESPONSE_BYTES: Final = 1024 * 1024
SUBJECT_ACCESS_REVIEWS: Final = b"/apis/authorization.k8s.io/v1/subjectaccessreviews"
TOKEN_REVIEWS: Final = b"/apis/authentication.k8s.io/v1/tokenreviews"
ERROR_BODY_CHARS: Final = 500  # of a refusal's message or body, in the log: an RBAC message fits whole


def refusal_text(payload: bytes) -> str:
    """What a refusal of kube-apiserver says: a Status's ``message``, else the start of the body; one line,
    bounded."""
    try:
        status = json.loads(payload)
    except (ValueError, RecursionError):
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str) and status["message"]:
        return message(status["message"], ERROR_BODY_CHARS)
    return message(payload[:ERROR_BODY_CHARS].decode(errors="replace"), ERROR_BODY_CHARS)


class CollectingSink:
    """Collects one upstream response (a ResponseSink for the proxy's own requests)."""

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_response_events(self, events: list[ResponseEvent]) -> None:
        for event in events:
            if isinstance(event, ResponseHead):
                self.status = event.status
            elif isinstance(event, Body):
                if len(self.body) + len(event.data) > MAX_RESPONSE_BYTES:
                    self.on_upstream_lost(UpstreamError("response too large"))
                    return
                self.body += event.data
            elif isinstance(event, MessageEnd) and not self.done.done():
                self.done.set_result(None)

    def on_upstream_lost(self, error: UpstreamError) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class KubeClient:
    def __init__(
        self,
        upstream: AsProxy,
        *,
        qps: float = 50.0,
        burst: int = 100,
        metrics: Metrics | None = None,
        budget: ReviewBudget | None = None,
    ) -> None:
        self._metrics = metrics
        self._pool = upstream.pool
        self._credentials = upstream.credentials
        self.budget = budget or ReviewBudget(qps, burst)

    @property
    def peer(self) -> str:
        """kube-apiserver's address as the proxy reaches it, for messages."""
        return f"{self._pool.target.scheme}://{self._pool.target.authority}"

    def describe(self, method: bytes, path: bytes, problem: str) -> str:
        return f"{method.decode()} {self.peer}{path.decode('latin-1')}: {problem}"

    async def request(
        self, method: bytes, path: bytes, body: Any = None, *, timeout: float = TIMEOUT_SECONDS
    ) -> tuple[int, bytes]:
        """Status and body of one request within ``timeout`` (a retry after a 401 included), not rate-limited
        (reviews go through ``create``). Raises ``UpstreamError`` whose detail names the request and the peer."""
        data = json.dumps(body).encode() if body is not None else b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            status, payload = await asyncio.wait_for(self._once(method, path, data), deadline - loop.time())
            if status == 401:
                self._credentials.unauthorized()
                status, payload = await asyncio.wait_for(self._once(method, path, data), deadline - loop.time())
        except TimeoutError:
            problem = f"no answer within {timeout:.3g}s"
            raise UpstreamTimeout(
                "kube-apiserver did not answer in time", self.describe(method, path, problem)
            ) from None
        except UpstreamError as exc:
            raise type(exc)(exc.message, self.describe(method, path, exc.detail)) from exc
        return status, payload

    async def _once(self, method: bytes, path: bytes, data: bytes) -> tuple[int, bytes]:
        headers: Headers = [
            (b"host", self._pool.target.authority.encode()),
            (b"accept", b"application/json"),
            (b"user-agent", b"kube-oidc-proxy"),
        ]
        if data:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        authorization = self._credentials.authorization()
        if authorization is not None:
            headers.append((b"authorization", authorization))
        conn = await self._pool.acquire()
        sink = CollectingSink()
        conn.begin(sink, head_only=False)
        conn.write(request_head(method, path, headers) + data)
        try:
            await sink.done
        except BaseException:
            conn.close()
            raise
        self._pool.release(conn)
        return sink.status, bytes(sink.body)

    async def create(self, path: bytes, body: dict[str, Any], *, caller: Caller, timeout: float) -> dict[str, Any]:
        """POST a review for ``caller`` (whose share of the budget it takes), answered within ``timeout``
        seconds, the wait for a slot included; raises ``ReviewError``."""
        kind = path.rsplit(b"/", 1)[-1].decode()
        timeout = min(timeout, TIMEOUT_SECONDS)
        clock = self.budget.clock
        deadline = clock() + timeout
        slot = self.budget.reserve(caller, deadline)
        if isinstance(slot, Throttled):
            if self._metrics is not None:
                self._metrics.review_throttled(kind, slot.value)
            problem = f"not sent: no slot of --kube-client-qps in time ({slot.value})"
            raise ReviewNotSent(self.describe(b"POST", path, problem))
        if slot > 0:
            await asyncio.sleep(slot)
        started = time.monotonic()
        try:
            status, payload = await self.request(b"POST", path, body, timeout=max(deadline - clock(), 0.0))
        except UpstreamError as exc:
            self._failed(kind)
            raise ReviewError(exc.detail) from exc
        if self._metrics is not None:
            self._metrics.reviews.labels(kind).observe(time.monotonic() - started)
        if status not in (200, 201):
            self._failed(kind)
            raise ReviewError(self.describe(b"POST", path, f"HTTP {status}: {refusal_text(payload)}"))
        try:
            result = json.loads(payload)
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested past the parser's depth
            self._failed(kind)
            raise ReviewError(self.describe(b"POST", path, "not JSON")) from exc
        if not isinstance(result, dict):
            self._failed(kind)
            raise ReviewError(self.describe(b"POST", path, "not a JSON object"))
        return result

    def _failed(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.review_failures.labels(kind).inc()

    async def subject_access_review(self, body: dict[str, Any], *, caller: str, timeout: float) -> bool:
        """Whether kube-apiserver allows (only a JSON true does: ``review.allowed_by``)."""
        return allowed_by(await self.create(SUBJECT_ACCESS_REVIEWS, body, caller=user(caller), timeout=timeout))

    async def token_review(
        self, token: str, audiences: tuple[str, ...], *, client: str, timeout: float = TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        """The answer's ``status`` ({} when it is not an object), for the client at address ``client``."""
        spec: dict[str, Any] = {"token": token}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        answer = await self.create(TOKEN_REVIEWS, body, caller=network(client), timeout=timeout)
        status = answer.get("status")
        return status if isinstance(status, dict) else {}
