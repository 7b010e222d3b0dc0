"""Prometheus metrics (prometheus-client), served on their own listener (``--metrics-bind-address``).

With ``--workers N`` the parent points ``PROMETHEUS_MULTIPROC_DIR`` at a private directory before the
workers start, and any worker's ``/metrics`` answers for all of them (prometheus-client's multiprocess
mode: counters and histograms are summed, gauges are summed over live processes).

Label values are bounded: verbs are kube-apiserver's verbs, codes are status codes, authentication
reasons are ``authn.model.Failure`` values, chosen where a refusal is decided (never a username or a path).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

    from kube_oidc_proxy.authn.model import Failure

NAMESPACE: Final = "kube_oidc_proxy"
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# Reviews per request: 0 (all remembered), 1 (a TokenReview; a denied or one-value --as), then powers of two
# up to authz.requested.MAX_IMPERSONATED_VALUES + 1.
REVIEW_COUNT_BUCKETS: Final = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 65.0)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def forget_worker(pid: int) -> None:
    """A worker exited: drop its live gauges (counters and histograms keep its counts)."""
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class Metrics:
    """Imports prometheus-client only when metrics are on, and after ``PROMETHEUS_MULTIPROC_DIR`` is set
    (the library picks its storage when it is first imported)."""

    def __init__(self) -> None:
        from prometheus_client import (  # noqa: PLC0415
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        from kube_oidc_proxy import buildinfo  # noqa: PLC0415

        # No <name>_created series beside every counter and histogram: Prometheus's text format has no use for
        # them and they double the series (multiprocess mode never writes them).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.content_type = CONTENT_TYPE_LATEST.encode()
        self.registry = CollectorRegistry()
        r = self.registry
        if not multiprocess_dir():  # process_* (memory, CPU, open files) of the one process
            ProcessCollector(registry=r)
        self.build_info = Gauge(
            "build_info",
            "Always 1; the labels say which proxy this is: version, git commit, Python version.",
            ["version", "commit", "python"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="max",  # every worker sets the same 1: one series, not one per worker
        )
        self.build_info.labels(buildinfo.version(), buildinfo.commit(), buildinfo.python()).set(1)
        self.requests = Counter(
            "http_requests",
            "Requests answered, by verb, status code and protocol (HTTP/1.1 or HTTP/2).",
            ["verb", "code", "protocol"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from request head to response end (long-running requests excluded).",
            ["verb"],
            namespace=NAMESPACE,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.upstream_duration = Histogram(
            "upstream_response_duration_seconds",
            "Time kube-apiserver took to start its response.",
            namespace=NAMESPACE,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.authentications = Counter(
            "authentications",
            "Authentication results, by result and reason.",
            ["result", "reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.token_cache = Counter(
            "token_cache_lookups",
            "Verified-token cache lookups, by result (hit or miss).",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.jwks_fetches = Counter(
            "jwks_fetches",
            "Fetches of the issuer's signing keys, by result.",
            ["issuer", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        # Both live: a worker that died before it had keys must not hold them at +Inf and 0 forever.
        self.jwks_age = Gauge(
            "jwks_age_seconds",
            "Age of the signing keys in use; +Inf while none were ever loaded.",
            ["issuer"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.jwks_loaded = Gauge(
            "jwks_keys_loaded",
            "1 once the issuer's signing keys are loaded; 0 while none were (its tokens are all refused).",
            ["issuer"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.config_reloads = Counter(
            "authentication_config_reloads",
            "Re-reads of a changed --authentication-config file, by result (success or failure: old config kept).",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.config_reload_time = Gauge(
            "authentication_config_last_reload_timestamp_seconds",
            "When the --authentication-config file was last re-read, by result.",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="max",
        )
        self.reviews = Histogram(
            "review_duration_seconds",
            "SubjectAccessReview and TokenReview latency.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.review_failures = Counter(
            "review_failures", "Reviews kube-apiserver did not answer.", ["kind"], namespace=NAMESPACE, registry=r
        )
        self.reviews_per_request = Histogram(
            "reviews_per_request",
            "Reviews one request asked kube-apiserver for (0: every answer was remembered).",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
            buckets=REVIEW_COUNT_BUCKETS,
        )
        self.reviews_throttled = Counter(
            "reviews_throttled",
            "Reviews not sent because the review budget (--kube-client-qps/--kube-client-burst) was spent.",
            ["kind", "reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.connections = Gauge(
            "open_connections", "Open client connections.", namespace=NAMESPACE, registry=r, multiprocess_mode="livesum"
        )
        self.connections_refused = Counter(
            "connections_refused",
            "Client connections refused because --max-client-connections were open.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.requests_shed = Counter(
            "requests_shed",
            "Requests answered 429 because --max-requests-inflight (kind=readOnly) or "
            "--max-mutating-requests-inflight (kind=mutating) were being worked on.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.inflight = Gauge(
            "inflight_requests",
            "Requests being worked on that count against the in-flight limits, sampled every few seconds.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.watches = Gauge(
            "active_watches",
            "Watches and followed logs being streamed.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tunnels = Gauge(
            "active_tunnels",
            "exec, attach, cp and port-forward streams open.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tasks = Gauge(
            "asyncio_tasks",
            "Tasks on the event loops (requests in flight, background work); a steady climb is a leak.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tunnel_bytes = Counter(
            "tunnel_bytes",
            "Bytes through exec/attach/port-forward tunnels, counted every few seconds while they flow.",
            ["direction"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.audit_dropped = Counter(
            "audit_events_dropped",
            "Audit events dropped because a batch buffer was full.",
            ["backend"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.audit_failed = Counter(
            "audit_events_failed",
            "Audit events a backend could not write (disk full, webhook down after its retries).",
            ["backend"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.log_lines_dropped = Counter(
            "log_lines_dropped",
            "Log lines dropped because the log's queue was full (stdout or stderr stalled) or the stream refused them.",
            ["log"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.logins = Counter(
            "logins",
            "Browser logins that came back from the IdP (/login/callback), by result.",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        # children of the per-request series, bound once: .labels() costs more than .inc()
        self._cache_hit = self.token_cache.labels("hit")
        self._cache_miss = self.token_cache.labels("miss")
        self._authenticated = self.authentications.labels("success", "ok")
        self._tunnel_up = self.tunnel_bytes.labels("up")
        self._tunnel_down = self.tunnel_bytes.labels("down")
        self._verbs: dict[tuple[str, int, str], tuple[Counter, Histogram]] = {}

    def sample_loop(self, reads_in_flight: int, mutating_in_flight: int) -> None:
        """The gauges only a look at this worker's loop can tell: tasks, and requests in flight."""
        self.tasks.set(len(asyncio.all_tasks()))
        self.inflight.labels("readOnly").set(reads_in_flight)
        self.inflight.labels("mutating").set(mutating_in_flight)

    def request_done(self, verb: str, code: int, protocol: str, started: float, *, long_running: bool) -> None:
        key = (verb, code, protocol)
        children = self._verbs.get(key)
        if children is None:
            children = self._verbs[key] = (
                self.requests.labels(verb, str(code), protocol),
                self.request_duration.labels(verb),
            )
        children[0].inc()
        if not long_running:
            children[1].observe(time.monotonic() - started)

    def authenticated(self, failure: Failure | None) -> None:
        """Count one authentication: ``failure`` is None when the caller was authenticated (whether or not
        the request was then allowed), else why the credential was refused."""
        if failure is None:
            self._authenticated.inc()
        else:
            self.authentications.labels("failure", failure.value).inc()

    def token_cache_lookup(self, hit: bool) -> None:
        (self._cache_hit if hit else self._cache_miss).inc()

    def jwks_fetch_counter(self, issuer: str) -> Callable[[bool], None]:
        """For a new key source: no keys yet (age +Inf, loaded 0) until a fetch succeeds."""
        succeeded = self.jwks_fetches.labels(issuer, "success")
        failed = self.jwks_fetches.labels(issuer, "failure")
        age = self.jwks_age.labels(issuer)
        loaded = self.jwks_loaded.labels(issuer)
        age.set(math.inf)
        loaded.set(0)

        def fetched(ok: bool) -> None:
            if ok:
                succeeded.inc()
                age.set(0)
                loaded.set(1)
            else:
                failed.inc()

        return fetched

    def jwks_forget(self, issuer: str) -> None:
        """An issuer no longer configured: its key gauges go (NaN with --workers, where prometheus-client
        cannot remove a series), so an alert on a +Inf age cannot fire for it forever."""
        for gauge in (self.jwks_age, self.jwks_loaded):
            if multiprocess_dir():
                gauge.labels(issuer).set(math.nan)
            else:
                gauge.remove(issuer)

    def tunnel_flow(self, up: int, down: int) -> None:
        """Bytes a tunnel moved since it was last counted (``Tunnel.uncounted``)."""
        if up:
            self._tunnel_up.inc(up)
        if down:
            self._tunnel_down.inc(down)

    def reviews_counter(self, kind: str) -> Callable[[int], None]:
        """``kind``: ``subjectaccessreviews`` or ``tokenreviews``; called once per request that needed reviews."""
        return self.reviews_per_request.labels(kind).observe

    def login(self, result: str) -> None:
        """``result``: success, refused (the authenticator, the nonce), provider_error, bad_request, overloaded."""
        self.logins.labels(result).inc()

    def review_throttled(self, kind: str, reason: str) -> None:
        self.reviews_throttled.labels(kind, reason).inc()

    def config_reloaded(self, ok: bool) -> None:
        result = "success" if ok else "failure"
        self.config_reloads.labels(result).inc()
        self.config_reload_time.labels(result).set(time.time())

    def audit_dropped_counter(self) -> Callable[[str], None]:
        return lambda backend: self.audit_dropped.labels(backend).inc()

    def audit_failed_counter(self) -> Callable[[str, int], None]:
        return lambda backend, count: self.audit_failed.labels(backend).inc(count)

    def log_lines_dropped_counter(self, log: str) -> Callable[[int], None]:
        """``log``: ``access`` or ``diagnostic``; called from the thread that dropped the lines."""
        return self.log_lines_dropped.labels(log).inc

    def exposition(self) -> bytes:
        """The text exposition; across workers in multiprocess mode."""
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess  # noqa: PLC0415

        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
