"""Readiness and liveness on a plain-HTTP port (``--readiness-probe-port``), for the kubelet.

``/ready`` (and ``/readyz``) is 200 only while it is true *now* (the Go proxy latched ready forever):
an issuer has signing keys loaded (every issuer with ``--readiness-require-all-issuers``; the last good
keys count: an IdP outage does not drain the proxy),
kube-apiserver answered within ``UPSTREAM_FRESH_SECONDS`` (else we ask ``/readyz`` with our own
credentials), and we are not shutting down (from the signal on: during ``--shutdown-delay-duration``
new connections are still served, so load balancers have time to stop sending them). ``/healthz``
(``/livez``, ``/live``) is 200 while the event loop answers at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.errors import UpstreamError
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.server.kubeclient import KubeClient
from kube_oidc_proxy.server.plainhttp import Handler, Reply, start_plain_server
from kube_oidc_proxy.server.proxy import ProxyServer

log = logging.getLogger("kop.probe")

UPSTREAM_FRESH_SECONDS: Final = 10.0
UPSTREAM_CHECK_TIMEOUT_SECONDS: Final = 5.0
READY_PATHS: Final = frozenset({b"/ready", b"/readyz"})
LIVE_PATHS: Final = frozenset({b"/healthz", b"/livez", b"/live"})


class Readiness:
    def __init__(
        self,
        key_sources: Callable[[], Sequence[KeySource]],
        proxy: ProxyServer,
        client: KubeClient,
        *,
        require_all_issuers: bool = False,
    ) -> None:
        self._key_sources = key_sources  # a callable: a reloaded --authentication-config changes them
        self._require_all = require_all_issuers  # --readiness-require-all-issuers
        self._proxy = proxy
        self._client = client
        self._check: asyncio.Task[None] | None = None
        self._upstream_error = ""  # why the last /readyz check failed, naming the address it tried

    async def check(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        if self._proxy.stopping:
            checks["shutdown"] = "shutting down: the listener is closed, in-flight requests are draining"
        elif self._proxy.terminating_until is not None:
            left = max(0.0, self._proxy.terminating_until - time.monotonic())
            checks["shutdown"] = (
                f"shutting down: still serving for {left:.1f}s (--shutdown-delay-duration), then the listener closes"
            )
        # Ready while at least one issuer has keys: a partner's IdP being down must not take everyone's
        # access away. Issuers without keys are listed either way. With --readiness-require-all-issuers
        # (RafPe's flag) every issuer must have keys, so a rollout waits for them all.
        sources = self._key_sources()
        waiting = [s for s in sources if not s.ready]
        for source in waiting:
            checks[f"issuer {source.issuer_url}"] = f"no signing keys yet: {source.last_error or 'loading'}"
        issuers_ready = not waiting if self._require_all else not sources or len(waiting) < len(sources)
        if not self._upstream_fresh():
            if self._check is None:
                self._check = asyncio.ensure_future(self._check_upstream())
                self._check.add_done_callback(self._clear_check)
            await asyncio.shield(self._check)
            if not self._upstream_fresh():
                checks["kube-apiserver"] = self._upstream_error or "no answer from kube-apiserver (/readyz)"
        ready = issuers_ready and "shutdown" not in checks and "kube-apiserver" not in checks
        return ready, checks

    def _clear_check(self, _: object) -> None:
        self._check = None

    def _upstream_fresh(self) -> bool:
        return time.monotonic() - self._proxy.last_upstream_answer < UPSTREAM_FRESH_SECONDS

    async def _check_upstream(self) -> None:
        try:
            status, _ = await asyncio.wait_for(self._client.request(b"GET", b"/readyz"), UPSTREAM_CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            problem = f"no answer within {UPSTREAM_CHECK_TIMEOUT_SECONDS:g}s"
            self._upstream_failed(self._client.describe(b"GET", b"/readyz", problem))
            return
        except UpstreamError as exc:
            self._upstream_failed(exc.detail)
            return
        if status != 401 and status < 500:
            if self._upstream_error:
                log.info("readiness: kube-apiserver answers again")
            self._upstream_error = ""
            self._proxy.upstream_answered(status)
        else:
            self._upstream_failed(self._client.describe(b"GET", b"/readyz", f"HTTP {status}"))

    def _upstream_failed(self, error: str) -> None:
        if error != self._upstream_error:  # once per change, not once per probe
            log.warning("readiness: kube-apiserver check failed: %s", error)
        self._upstream_error = error


def probe_handler(readiness: Readiness) -> Handler:
    async def answer(head: RequestHead) -> Reply:
        path = head.target.split(b"?", 1)[0]
        if path in LIVE_PATHS:
            return _json(200, {"status": "ok"})
        if path in READY_PATHS:
            ready, checks = await readiness.check()
            return _json(200 if ready else 503, {"status": "ok" if ready else "not ready", "checks": checks})
        return _json(404, {"error": "not found"})

    return answer


def _json(status: int, body: object) -> Reply:
    return Reply(status, b"application/json", json.dumps(body).encode())


async def start_probe_server(
    host: str, port: int, readiness: Readiness, tasks: set[asyncio.Task[None]], *, reuse_port: bool = False
) -> asyncio.Server:
    return await start_plain_server(
        host, port, probe_handler(readiness), tasks, reuse_port=reuse_port, what="readiness probe"
    )
