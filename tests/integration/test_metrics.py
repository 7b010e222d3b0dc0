"""Prometheus metrics on their own listener: what an on-call engineer's dashboard reads, scraped as
Prometheus does and parsed by prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from kube_oidc_proxy import __version__
from kube_oidc_proxy.buildinfo import commit
from kube_oidc_proxy.config import AuditBatchConfig, AuditConfig, Config, OIDCConfig
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.server.lifecycle import setup_logging
from kube_oidc_proxy.server.reviewbudget import ReviewBudget
from tests.conftest import ProxyHandle, start_proxy
from tests.integration.test_authentication_config import corporate, document, write
from tests.support.certs import CertFiles
from tests.support.client import Client, get
from tests.support.issuer import TestIssuer
from tests.support.listeners import children, wait_until_listening
from tests.support.ports import PortHolder
from tests.support.process import start_process
from tests.support.streams import GUARD_SECONDS, GatedStream
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SPDY_EXEC = (
    "POST /api/v1/namespaces/ns/pods/web/exec?command=sh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n"
)


def scrape_text(port: int | None, path: str = "/metrics") -> tuple[int, str, str]:
    assert port is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def scrape(port: int | None) -> Samples:
    status, _, text = await asyncio.to_thread(scrape_text, port)
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"kube_oidc_proxy_{name}", frozenset(labels.items())), 0.0)


async def eventually(check: Any, port: int | None, timeout: float = 5) -> Samples:
    """Scrape until ``check(samples)`` holds (gauges move when the event loop gets to it)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.05)


@pytest.fixture
async def proxy(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    metered = replace(config, proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0"))
    handle = await start_proxy(metered, issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


async def test_requests_authentications_and_the_token_cache_are_counted(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/ns/pods", token=token)).status == 200
    for _ in range(2):
        assert (await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/ns/pods/web", token=token)).status == 200
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token="not-a-jwt")).status == 401
    expired = proxy.issuer.token(exp=int(time.time()) - 600)
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/secrets", token=expired)).status == 401
    assert (await get(proxy.port, proxy.ca_file, "/status/503", token=token)).status == 503

    samples = await scrape(port)
    assert value(samples, "http_requests_total", verb="list", code="200", protocol="HTTP/1.1") == 1
    assert value(samples, "http_requests_total", verb="get", code="200", protocol="HTTP/1.1") == 2
    assert value(samples, "http_requests_total", verb="list", code="401", protocol="HTTP/1.1") == 2
    assert value(samples, "http_requests_total", verb="get", code="503", protocol="HTTP/1.1") == 1
    assert value(samples, "http_request_duration_seconds_count", verb="get") == 3
    assert value(samples, "upstream_response_duration_seconds_count") == 4
    assert value(samples, "authentications_total", result="success", reason="ok") == 4
    assert value(samples, "authentications_total", result="failure", reason="malformed") == 1
    assert value(samples, "authentications_total", result="failure", reason="expired") == 1
    # the first use of a token verifies it; later uses are served from the cache
    assert value(samples, "token_cache_lookups_total", result="hit") == 3
    assert value(samples, "token_cache_lookups_total", result="miss") == 3
    issuer = proxy.issuer.url
    assert value(samples, "jwks_fetches_total", issuer=issuer, result="success") >= 1
    assert 0 <= value(samples, "jwks_age_seconds", issuer=issuer) < 60
    assert value(samples, "jwks_keys_loaded", issuer=issuer) == 1


async def test_a_wrong_issuer_url_shows_as_keys_never_loaded_and_infinitely_old(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    wrong = issuer.url + "/realms/typo"  # its discovery document is not there
    metered = replace(config, proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0"))
    handle = await start_proxy(replace(metered, oidc=replace(config.oidc, issuer_url=wrong)), issuer, upstream,
                               wait_for_keys=False)  # fmt: skip
    try:
        (source,) = handle.app.key_sources
        await until(lambda: source.fetch_count >= 1 and not source.fetching, "the first fetch to fail")
        samples = await scrape(handle.running.metrics_port)
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
    assert value(samples, "jwks_fetches_total", issuer=wrong, result="failure") >= 1
    assert value(samples, "jwks_keys_loaded", issuer=wrong) == 0
    # the documented alert, max by (issuer) (kube_oidc_proxy_jwks_age_seconds) > 3600, holds
    assert value(samples, "jwks_age_seconds", issuer=wrong) == math.inf


async def test_an_issuer_removed_from_the_file_before_it_had_keys_leaves_no_series_behind(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    typo = corporate(issuer) | {"issuer": corporate(issuer)["issuer"] | {"url": issuer.url + "/typo"}}
    path = tmp_path / "authentication-config.yaml"
    write(path, document(corporate(issuer), typo))
    cfg = replace(
        config,
        oidc=OIDCConfig(authentication_config=str(path)),
        proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0"),
    )
    handle = await start_proxy(cfg, issuer, upstream, wait_for_keys=False)
    try:
        await until(lambda: all(s.fetch_count for s in handle.app.key_sources), "a fetch of each issuer")
        port = handle.running.metrics_port
        samples = await eventually(lambda s: value(s, "jwks_keys_loaded", issuer=issuer.url) == 1, port)
        assert value(samples, "jwks_age_seconds", issuer=issuer.url + "/typo") == math.inf
        write(path, document(corporate(issuer)))  # the typo fixed by removing it
        samples = await eventually(
            lambda s: value(s, "authentication_config_reloads_total", result="success") == 1, port
        )
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
    key_gauges = ("kube_oidc_proxy_jwks_age_seconds", "kube_oidc_proxy_jwks_keys_loaded")
    left = {(name, dict(labels)["issuer"]) for name, labels in samples if name in key_gauges}
    assert left == {(name, issuer.url) for name in key_gauges}  # no +Inf alerting for an issuer long gone


async def test_which_proxy_answers_is_one_build_info_series_and_no_counter_has_a_created_series(
    proxy: ProxyHandle,
) -> None:
    assert (await get(proxy.port, proxy.ca_file, "/api", token=proxy.issuer.token())).status == 200
    status, _, text = await asyncio.to_thread(scrape_text, proxy.running.metrics_port)
    assert status == 200 and "_created" not in text
    (build,) = (s for s in (await scrape(proxy.running.metrics_port)) if s[0] == "kube_oidc_proxy_build_info")
    assert dict(build[1]) == {"version": __version__, "commit": commit(), "python": platform.python_version()}


async def test_the_listener_serves_only_metrics(proxy: ProxyHandle) -> None:
    status, content_type, text = await asyncio.to_thread(scrape_text, proxy.running.metrics_port)
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert "# TYPE kube_oidc_proxy_http_requests_total counter" in text
    assert "process_resident_memory_bytes" in text  # one process: its memory and CPU too
    status, _, text = await asyncio.to_thread(scrape_text, proxy.running.metrics_port, "/debug")
    assert status == 404 and "/metrics" in text


async def test_watches_connections_and_tunnels_are_gauged(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    watcher = await Client.connect(proxy.port, proxy.ca_file)
    await watcher.send_raw(
        f"GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    await asyncio.wait_for(watcher.reader.readuntil(b"\r\n\r\n"), 10)
    samples = await eventually(lambda s: value(s, "active_watches") == 1, port)
    assert value(samples, "active_watches") == 1
    assert value(samples, "open_connections") == 1

    execing = await Client.connect(proxy.port, proxy.ca_file)
    await execing.send_raw(SPDY_EXEC.format(token=token).encode())
    assert (await asyncio.wait_for(execing.reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 101")
    execing.writer.write(b"x" * 1000)
    assert await asyncio.wait_for(execing.reader.readexactly(1000), 5) == b"x" * 1000  # echoed by the upstream
    samples = await eventually(lambda s: value(s, "active_tunnels") == 1, port)
    assert value(samples, "active_tunnels") == 1
    assert value(samples, "open_connections") == 2

    await watcher.close()
    await execing.close()
    samples = await eventually(
        lambda s: (
            value(s, "active_tunnels") == 0 and value(s, "active_watches") == 0 and not value(s, "open_connections")
        ),
        port,
    )
    assert (value(samples, "active_watches"), value(samples, "active_tunnels")) == (0, 0)
    assert value(samples, "open_connections") == 0
    assert value(samples, "tunnel_bytes_total", direction="up") == 1000
    assert value(samples, "tunnel_bytes_total", direction="down") == 1000
    assert value(samples, "http_requests_total", verb="watch", code="200", protocol="HTTP/1.1") == 1
    assert value(samples, "http_requests_total", verb="create", code="101", protocol="HTTP/1.1") == 1
    assert value(samples, "http_request_duration_seconds_count", verb="watch") == 0  # long-running: not a latency


async def test_a_tunnels_bytes_are_counted_while_it_is_still_open(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    execing = await Client.connect(proxy.port, proxy.ca_file)
    try:
        await execing.send_raw(SPDY_EXEC.format(token=token).encode())
        assert (await asyncio.wait_for(execing.reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 101")
        sent = 0
        for chunk in (b"x" * 1000, b"y" * 4000):
            execing.writer.write(chunk)
            assert await asyncio.wait_for(execing.reader.readexactly(len(chunk)), 5) == chunk  # echoed upstream
            sent += len(chunk)
            samples = await scrape(port)  # a scrape counts what this worker's open tunnels moved until now
            assert value(samples, "active_tunnels") == 1
            assert value(samples, "tunnel_bytes_total", direction="up") == sent
            assert value(samples, "tunnel_bytes_total", direction="down") == sent
    finally:
        await execing.close()
    samples = await eventually(lambda s: value(s, "active_tunnels") == 0, port)
    assert value(samples, "tunnel_bytes_total", direction="up") == 5000  # nothing counted twice at the close


async def test_the_event_loops_tasks_are_gauged_and_follow_the_watches(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    watch = f"GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()

    async def watching() -> Client:
        watcher = await Client.connect(proxy.port, proxy.ca_file)
        await watcher.send_raw(watch)
        await asyncio.wait_for(watcher.reader.readuntil(b"\r\n\r\n"), 10)
        return watcher

    await (await watching()).close()  # the shared HTTP/2 connection upstream (and its health check) stays
    await eventually(lambda s: value(s, "active_watches") == 0, port)
    idle = value(await scrape(port), "asyncio_tasks")
    assert idle > 0  # the housekeeping task, at least
    watchers = [await watching() for _ in range(5)]
    busy = value(await eventually(lambda s: value(s, "asyncio_tasks") >= idle + 5, port, 10), "asyncio_tasks")
    assert busy >= idle + 5  # one task per watch
    for watcher in watchers:
        await watcher.close()
    assert value(await eventually(lambda s: value(s, "asyncio_tasks") <= idle, port, 10), "asyncio_tasks") <= idle


async def test_review_latency_and_failures(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    proxy.upstream.sar_policy = lambda spec: True
    as_bob = [("impersonate-user", "bob")]
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=token, headers=as_bob)).status == 200
    proxy.upstream.sar_failure = 500
    as_carol = [("impersonate-user", "carol")]
    assert (await get(proxy.port, proxy.ca_file, "/api/v1/pods", token=token, headers=as_carol)).status >= 500
    samples = await scrape(port)
    assert value(samples, "review_duration_seconds_count", kind="subjectaccessreviews") == 2
    assert value(samples, "review_failures_total", kind="subjectaccessreviews") == 1


async def test_reviews_per_request_and_reviews_the_budget_refused(proxy: ProxyHandle) -> None:
    port, token = proxy.running.metrics_port, proxy.issuer.token()
    proxy.upstream.sar_policy = lambda spec: spec["resourceAttributes"]["name"] in ("bob", "ops")
    as_bob = [("impersonate-user", "bob"), ("impersonate-group", "ops"), ("impersonate-group", "root")]
    for _ in range(2):  # 3 reviews, then none: every answer remembered
        assert (await get(proxy.port, proxy.ca_file, "/api", token=token, headers=as_bob)).status == 403
    proxy.app.client.budget = ReviewBudget(0.001, 1, clock=lambda: 0.0)  # one more review, then none for 1000 s
    for user in ("carol", "dave"):
        await get(proxy.port, proxy.ca_file, "/api", token=token, headers=[("impersonate-user", user)])
    samples = await scrape(port)
    kind = {"kind": "subjectaccessreviews"}
    assert value(samples, "reviews_per_request_count", **kind) == 4
    assert value(samples, "reviews_per_request_sum", **kind) == 3 + 0 + 1 + 0  # dave's review was not sent
    assert value(samples, "reviews_per_request_bucket", le="0.0", **kind) == 2
    assert value(samples, "reviews_per_request_bucket", le="1.0", **kind) == 3
    assert value(samples, "reviews_throttled_total", reason="deadline", **kind) == 1


class SlowSink:
    """An audit webhook that takes a second to answer each batch."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(1)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audit"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def slow_sink() -> Iterator[SlowSink]:
    sink = SlowSink()
    yield sink
    sink.server.shutdown()


async def test_audit_events_dropped_by_a_full_buffer_are_counted(
    tmp_path: Path, config: Config, issuer: TestIssuer, upstream: RecordingUpstream, slow_sink: SlowSink
) -> None:
    (tmp_path / "policy.yaml").write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
    hook = tmp_path / "webhook.kubeconfig"
    hook.write_text(
        f"apiVersion: v1\nkind: Config\nclusters: [{{name: s, cluster: {{server: '{slow_sink.url}'}}}}]\n"
        "users: [{name: s, user: {}}]\ncurrent-context: s\ncontexts: [{name: s, context: {cluster: s, user: s}}]\n"
    )
    audit = AuditConfig(
        policy_file=str(tmp_path / "policy.yaml"),
        webhook_config_file=str(hook),
        webhook_batch=AuditBatchConfig(buffer_size=1, max_size=1, max_wait=0.0),
    )
    metered = replace(config, audit=audit, proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0"))
    handle = await start_proxy(metered, issuer, upstream)
    try:
        token = issuer.token()
        for i in range(5):  # 10 events; the sink is busy with the first for a second, the buffer holds one
            assert (await get(handle.port, handle.ca_file, f"/api/v1/pods?i={i}", token=token)).status == 200
        samples = await scrape(handle.running.metrics_port)
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
    dropped = value(samples, "audit_events_dropped_total", backend="webhook")
    assert dropped >= 6
    assert handle.app.proxy.auditor is not None and dropped == handle.app.proxy.auditor.dropped["webhook"]


@pytest.fixture
def stalled_stderr() -> Iterator[tuple[GatedStream, BoundedQueueHandler]]:
    """Diagnostics set up as the command does, to a stderr nobody reads."""
    root, kop = logging.getLogger(), logging.getLogger("kop")
    saved = (root.handlers[:], root.level, kop.level)
    stderr = GatedStream(shut=True)
    handler = setup_logging(0, stderr)
    yield stderr, handler
    stderr.open()
    handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    kop.setLevel(saved[2])


async def test_log_lines_dropped_while_stdout_and_stderr_stall_are_counted_per_log(
    config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    stalled_stderr: tuple[GatedStream, BoundedQueueHandler],
) -> None:
    stderr, diagnostics = stalled_stderr
    diagnostics.lines.limit = 1
    stdout = GatedStream(shut=True)
    access_log = AccessLog(stdout, limit=1)
    metered = replace(config, proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0"))
    handle = await start_proxy(metered, issuer, upstream, access_log=access_log)
    try:
        token = issuer.token()
        assert (await get(handle.port, handle.ca_file, "/api/v1/pods?n=0", token=token)).status == 200
        assert await asyncio.to_thread(stdout.entered.wait, GUARD_SECONDS)  # stuck writing the first line
        for n in range(1, 5):
            assert (await get(handle.port, handle.ca_file, f"/api/v1/pods?n={n}", token=token)).status == 200
        for _ in range(3):  # each is an AuFail line and an INFO record
            assert (await get(handle.port, handle.ca_file, "/api/v1/pods", token="not-a-jwt")).status == 401
        samples = await scrape(handle.running.metrics_port)
        diagnostics_dropped = diagnostics.lines.dropped  # before shutting down logs more
    finally:
        stdout.open()
        stderr.open()
        await handle.running.stop(grace=1)
        access_log.close()
    # 8 lines: one being written, one queued, 6 dropped
    assert value(samples, "log_lines_dropped_total", log="access") == access_log.queue.dropped == 6
    assert value(samples, "log_lines_dropped_total", log="diagnostic") == diagnostics_dropped >= 1


def _served_by(shared_dir: str, pid: int, tmp_path: Path) -> float:
    """One worker's own count, read from its file alone with prometheus-client's multiprocess reader."""
    alone = tmp_path / f"worker-{pid}"
    alone.mkdir()
    shutil.copy(Path(shared_dir) / f"counter_{pid}.db", alone)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
    return (
        registry.get_sample_value(
            "kube_oidc_proxy_http_requests_total", {"verb": "get", "code": "200", "protocol": "HTTP/1.1"}
        )
        or 0.0
    )


async def test_workers_share_one_view_of_the_metrics(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> None:
    ports = PortHolder()
    metrics_port = ports.take()
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = start_process(
        str(tmp_path), issuer, upstream, server_certs,
        "--workers=2", f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        env={**os.environ, "TMPDIR": str(temp)}, ports=ports,
    )  # fmt: skip
    try:
        process.wait_ready()  # one worker answers readiness; the other may not have bound the port yet
        workers = wait_until_listening(lambda: children(process.proc.pid), process.port, count=2)
        (shared_dir,) = map(str, temp.glob("kube-oidc-proxy-metrics-*"))
        token = issuer.token()
        responses = await asyncio.gather(
            *(get(process.port, process.ca_file, f"/api/v1/namespaces/ns/pods/p{i}", token=token) for i in range(40))
        )
        assert {r.status for r in responses} == {200}
        # both workers served some; each scrape lands on either worker, and every answer counts all 40
        served = [_served_by(shared_dir, pid, tmp_path) for pid in workers]
        assert min(served) > 0 and sum(served) == 40, served
        for _ in range(6):
            samples = await scrape(metrics_port)
            assert value(samples, "http_requests_total", verb="get", code="200", protocol="HTTP/1.1") == 40
            assert value(samples, "jwks_keys_loaded", issuer=issuer.url) == 1  # both served: both have keys
        _, _, text = await asyncio.to_thread(scrape_text, metrics_port)
        assert "_created" not in text
        assert text.count("kube_oidc_proxy_build_info{") == 1  # one series however many workers set it
        assert os.path.isdir(shared_dir)
        assert await asyncio.to_thread(process.stop) == 0
    finally:
        process.kill()
    assert not os.path.exists(shared_dir)  # removed by the parent on exit
