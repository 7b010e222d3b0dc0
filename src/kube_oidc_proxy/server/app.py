"""Process lifecycle: build everything from ``Config``, serve until a signal, stop gracefully.

``load`` does the reading and checking that can fail (files, certificates, kubeconfig) and raises
``StartupError`` with one clear sentence; ``serve`` runs the event loop. With ``--workers N`` the parent
checks the configuration once, forks N workers that each load and serve on the same port
(SO_REUSEPORT: the kernel spreads connections), forwards signals to them and restarts one that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kube_oidc_proxy.audit.auditor import Auditor, Format, Mode
from kube_oidc_proxy.audit.backends import BatchSettings, LogFile, Sink, Webhook, WebhookTarget
from kube_oidc_proxy.audit.policy import PolicyError, parse_policy
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.passthrough import Passthrough
from kube_oidc_proxy.authz.checker import ImpersonationChecker
from kube_oidc_proxy.clientip import TrustedProxies, parse_networks
from kube_oidc_proxy.config import AuditBatchConfig, AuditConfig, Config, OIDCConfig, split_host_port
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.gate import Gate
from kube_oidc_proxy.heaptrim import HeapTrimmer
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.impersonation import Rewriter
from kube_oidc_proxy.kube.credentials import BearerToken
from kube_oidc_proxy.kube.execcredential import ExecCredential, ExecCredentialError
from kube_oidc_proxy.kube.target import UpstreamTarget, load_target, webhook_kubeconfig
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.observe.linequeue import TextStream
from kube_oidc_proxy.observe.metrics import MULTIPROC_ENV, Metrics, forget_worker
from kube_oidc_proxy.server.authentication import Authentication
from kube_oidc_proxy.server.inflight import InflightLimit, idle_connections
from kube_oidc_proxy.server.kubeclient import KubeClient
from kube_oidc_proxy.server.plainhttp import Handler, Reply, start_plain_server
from kube_oidc_proxy.server.probe import Readiness, start_probe_server
from kube_oidc_proxy.server.proxy import ProxyServer
from kube_oidc_proxy.server.tls import ServingTLS, client_context
from kube_oidc_proxy.server.upstreams import AsCaller, AsProxy

log = logging.getLogger("kop.app")

TLS_RELOAD_POLL_SECONDS: Final = 2.0
# The proxy's own API calls (SubjectAccessReview, TokenReview). client-go's 5/10 throttled --as users of
# the Go proxy (Tremolo issue #65); reviews are cached, so this is a ceiling, not a pace.
DEFAULT_CLIENT_QPS: Final = 50.0
DEFAULT_CLIENT_BURST: Final = 100
WORKER_RESTART_DELAY_SECONDS: Final = 1.0
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
EXIT_NOW_WRITE_SECONDS: Final = 0.5  # on a second signal: how long the queued log lines may take to write


def setup_logging(verbosity: int, stream: TextStream | None = None) -> BoundedQueueHandler:
    """Diagnostics to stderr, one line per record, through a bounded queue, so a slow stderr never blocks
    the event loop and a stalled one never grows memory (observe/diaglog.py). Close the handler to write
    what is queued."""
    handler = BoundedQueueHandler(stream if stream is not None else sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("kop").setLevel(logging.DEBUG if verbosity >= 4 else logging.INFO)
    return handler


def _count_dropped_log_lines(access_log: AccessLog, metrics: Metrics) -> None:
    """Count dropped access lines, and diagnostic ones when ``setup_logging`` installed their queue."""
    access_log.queue.on_dropped = metrics.log_lines_dropped_counter("access")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BoundedQueueHandler):
            handler.lines.on_dropped = metrics.log_lines_dropped_counter("diagnostic")


@dataclass
class App:
    config: Config
    tls: ServingTLS
    target: UpstreamTarget
    proxy: ProxyServer
    authentication: Authentication
    access_log: AccessLog
    client: KubeClient
    metrics: Metrics | None = None

    @property
    def key_sources(self) -> list[KeySource]:
        return self.authentication.key_sources


def _authentication(config: OIDCConfig, metrics: Metrics | None) -> Authentication:
    allow_system = config.allow_system_identities
    if config.authentication_config:
        return Authentication.from_file(
            config.authentication_config, allow_system_identities=allow_system, metrics=metrics
        )
    spec = config.to_spec(_read_oidc_ca(config.ca_file))
    return Authentication([spec], allow_system_identities=allow_system, metrics=metrics)


def _read_oidc_ca(path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read --oidc-ca-file {path!r}: {exc.strerror}") from None


def _exec_plugin(target: UpstreamTarget) -> ExecCredential | None:
    if target.exec_config is None:
        return None
    plugin = ExecCredential(target.exec_config)
    try:
        plugin.run_now()
    except ExecCredentialError as exc:
        raise StartupError(str(exc)) from None
    return plugin


def _mode(flag: str) -> Mode:
    return "batch" if flag == "batch" else "blocking-strict" if flag == "blocking-strict" else "blocking"


def _auditor(config: AuditConfig) -> Auditor | None:
    if not config.policy_file:
        return None
    try:
        policy = parse_policy(Path(config.policy_file).read_text())
    except OSError as exc:
        raise StartupError(f"cannot read --audit-policy-file {config.policy_file!r}: {exc.strerror}") from None
    except PolicyError as exc:
        raise StartupError(f"--audit-policy-file {config.policy_file!r}: {exc}") from None
    auditor = Auditor(policy, [])

    def settings(batch: AuditBatchConfig) -> BatchSettings:
        throttle = batch.throttle_qps if batch.throttle_enable else 0.0
        return BatchSettings(batch.buffer_size, batch.max_size, batch.max_wait, throttle, batch.throttle_burst)

    if config.log_path:
        try:
            sink: Sink = LogFile(
                config.log_path,
                max_size_mb=config.log_max_size,
                max_backups=config.log_max_backup,
                max_age_days=config.log_max_age,
                compress=config.log_compress,
            )
        except OSError as exc:
            raise StartupError(f"cannot open --audit-log-path {config.log_path!r}: {exc.strerror}") from None
        log_format: Format = "legacy" if config.log_format == "legacy" else "json"
        auditor.add_output(
            sink,
            format=log_format,
            mode=_mode(config.log_mode),
            batch=settings(config.log_batch),
            max_event_size=config.log_truncate.max_event_size if config.log_truncate.enabled else 0,
        )
    if config.webhook_config_file:
        hook = webhook_kubeconfig(config.webhook_config_file)
        context = client_context(
            hook.ca_pem,
            insecure=hook.insecure,
            client_cert_pem=hook.client_cert_pem,
            client_key_pem=hook.client_key_pem,
            what="the audit webhook",
        )
        target = WebhookTarget(hook.url, context, hook.token)
        truncate = config.webhook_truncate
        webhook = Webhook(
            target,
            initial_backoff=config.webhook_initial_backoff,
            max_batch_bytes=truncate.max_batch_size if truncate.enabled else 0,
        )
        auditor.add_output(
            webhook,
            format="json",
            mode=_mode(config.webhook_mode),
            batch=settings(config.webhook_batch),
            max_event_size=truncate.max_event_size if truncate.enabled else 0,
        )
    return auditor


def load(config: Config, access_log: AccessLog | None = None, *, with_metrics: bool = True) -> App:
    """Read files and build the parts; every failure is a StartupError naming what is wrong.

    ``with_metrics=False`` is for the parent of ``--workers``, which checks the configuration but must not
    create metric files of its own."""
    metrics = Metrics() if config.proxy.metrics_bind_address and with_metrics else None
    tls = ServingTLS(config.serving)
    target = load_target(config.client, os.environ)
    authentication = _authentication(config.oidc, metrics)
    rewriter = Rewriter(
        upstream_host=target.authority.encode(),
        static_extra=dict(config.proxy.extra_user_headers),
        client_ip_extra=config.proxy.extra_user_header_client_ip,
    )
    access_log = access_log or AccessLog(json=config.proxy.log_format == "json")
    if metrics is not None:
        _count_dropped_log_lines(access_log, metrics)
    max_reads, max_mutating = config.proxy.max_requests_inflight, config.proxy.max_mutating_requests_inflight
    max_idle = idle_connections(max_reads, max_mutating)
    as_proxy = AsProxy(target, BearerToken(target.token, target.token_file, exec_plugin=_exec_plugin(target)), max_idle)
    client = KubeClient(
        as_proxy,
        qps=config.client.qps or DEFAULT_CLIENT_QPS,
        burst=config.client.burst or DEFAULT_CLIENT_BURST,
        metrics=metrics,
    )
    gate = Gate(
        authentication.token_authenticator,
        rewriter,
        checker=ImpersonationChecker(
            client, on_reviews=metrics.reviews_counter("subjectaccessreviews") if metrics else None
        ),
        passthrough=Passthrough(
            client,
            config.proxy.token_passthrough_audiences,
            on_reviews=metrics.reviews_counter("tokenreviews") if metrics else None,
        )
        if config.proxy.token_passthrough
        else None,
        disable_impersonation=config.proxy.disable_impersonation,
        metrics=metrics,
    )
    auditor = _auditor(config.audit)
    if auditor is not None and metrics is not None:
        auditor.on_dropped = metrics.audit_dropped_counter()
        auditor.on_failed = metrics.audit_failed_counter()
    proxy = ProxyServer(
        gate=gate,
        as_proxy=as_proxy,
        as_caller=AsCaller(target, max_idle),
        access_log=access_log,
        request_timeout=target.request_timeout,
        auditor=auditor,
        metrics=metrics,
        trusted_proxies=TrustedProxies(parse_networks(config.proxy.trusted_proxy_cidrs)),
        max_connections=config.proxy.max_client_connections,
        inflight=InflightLimit(max_reads, max_mutating),
    )
    return App(config, tls, target, proxy, authentication, access_log, client, metrics)


async def _housekeeping(app: App) -> None:
    """Every few seconds: reload rotated serving certificates and a changed --authentication-config, update
    the key-set age and task gauges; once a minute, give freed heap memory back (``heaptrim``)."""
    trimmer = HeapTrimmer()
    while True:
        await asyncio.sleep(TLS_RELOAD_POLL_SECONDS)
        app.tls.reload_if_changed()
        await app.authentication.reload_if_changed()
        trimmer.due(time.monotonic())
        if app.metrics is not None:
            app.metrics.sample_loop(app.proxy.inflight.reads, app.proxy.inflight.mutating)
            for source in app.key_sources:
                if source.fetched_at:
                    app.metrics.jwks_age.labels(source.issuer_url).set(time.time() - source.fetched_at)


@dataclass
class Running:
    """A started app: where it listens, and how to stop it."""

    app: App
    addresses: list[tuple[str, int]]
    probe: asyncio.Server | None
    poller: asyncio.Future[None]
    metrics_server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    @property
    def probe_port(self) -> int | None:
        if self.probe is None:
            return None
        return _ipv4_port(self.probe)

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics_server is None else _ipv4_port(self.metrics_server)

    async def delay_stop(self, delay: float | None = None) -> None:
        """kube-apiserver's --shutdown-delay-duration: /ready answers 503 at once while new connections are
        still accepted and served, so load balancers remove this endpoint before the listener closes."""
        delay = delay if delay is not None else self.app.config.proxy.shutdown_delay
        self.app.proxy.terminate_after(delay)
        if delay > 0:
            log.info("shutting down in %gs (--shutdown-delay-duration): /ready answers 503, serving meanwhile", delay)
            await asyncio.sleep(delay)

    async def stop(self, grace: float | None = None) -> None:
        log.info("shutting down")
        self.poller.cancel()
        for listener in (self.probe, self.metrics_server):
            if listener is not None:
                listener.close()
        await self.app.proxy.stop(grace if grace is not None else self.app.config.proxy.shutdown_grace)
        await self.app.authentication.close()
        if self.app.proxy.auditor is not None:
            await asyncio.sleep(0)  # events of this loop turn reach their batch or group write first
            await asyncio.to_thread(self.app.proxy.auditor.close)


def _ipv4_port(server: asyncio.Server) -> int:
    """The IPv4 port of a listener (with port 0 each address family gets its own)."""
    ports: list[int] = [s.getsockname()[1] for s in server.sockets if s.family == socket.AF_INET]
    return ports[0] if ports else int(server.sockets[0].getsockname()[1])


def _metrics_handler(metrics: Metrics, inflight: InflightLimit) -> Handler:
    async def answer(head: RequestHead) -> Reply:
        if head.target.split(b"?", 1)[0] != b"/metrics":
            return Reply(404, b"text/plain", b"not found; metrics are at /metrics\n")
        # this worker's, now; the others' from their housekeeping
        metrics.sample_loop(inflight.reads, inflight.mutating)
        body = await asyncio.to_thread(metrics.exposition)  # multiprocess mode reads every worker's files
        return Reply(200, metrics.content_type, body)

    return answer


async def _start_metrics_server(app: App, reuse_port: bool) -> asyncio.Server | None:
    if app.metrics is None:
        return None
    address = app.config.proxy.metrics_bind_address
    host, port = split_host_port(address)
    try:
        return await start_plain_server(
            host,
            port,
            _metrics_handler(app.metrics, app.proxy.inflight),
            app.proxy.tasks,
            reuse_port=reuse_port,
            what="metrics",
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on --metrics-bind-address {address}: {exc.strerror}") from None


async def start(app: App, *, reuse_port: bool = False) -> Running:
    config = app.config
    app.authentication.start()
    try:
        addresses = await app.proxy.start(
            config.serving.bind_address, config.serving.secure_port, app.tls.context, reuse_port=reuse_port
        )
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {config.serving.bind_address}:{config.serving.secure_port}: {exc.strerror}"
        ) from None
    probe = None
    if config.proxy.readiness_probe_port is not None:
        try:
            probe = await start_probe_server(
                "",  # all interfaces, as the Go proxy: the kubelet probes the pod IP
                config.proxy.readiness_probe_port,
                Readiness(lambda: app.key_sources, app.proxy, app.client),
                app.proxy.tasks,
                reuse_port=reuse_port,
            )
        except OSError as exc:
            await app.proxy.stop(0)
            raise StartupError(
                f"cannot listen on readiness port {config.proxy.readiness_probe_port}: {exc.strerror}"
            ) from None
    try:
        metrics_server = await _start_metrics_server(app, reuse_port)
    except StartupError:
        if probe is not None:
            probe.close()
        await app.proxy.stop(0)
        raise
    target = app.target
    credential = (
        "exec plugin"
        if target.exec_config
        else "token file"
        if target.token_file
        else "token"
        if target.token
        else "client certificate"
    )
    log.info(
        "serving on %s, forwarding to %s://%s with the %s as identity",
        ", ".join(f"{h}:{p}" for h, p in addresses),
        target.scheme,
        target.authority,
        credential,
    )
    if metrics_server is not None:
        log.info("metrics at http://%s/metrics", config.proxy.metrics_bind_address)
    return Running(app, addresses, probe, asyncio.ensure_future(_housekeeping(app)), metrics_server)


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: PLC0415 - optional, Linux only

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _write_queued_lines(app: App, timeout: float) -> None:
    """Access and diagnostic lines still queued, each queue given at most ``timeout``."""
    app.access_log.close(timeout)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BoundedQueueHandler):
            handler.lines.close(timeout)


def run_worker(config: Config, *, reuse_port: bool) -> int:
    app = load(config)
    _install_uvloop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals_seen = 0

        def on_signal() -> None:
            nonlocal signals_seen
            signals_seen += 1
            if signals_seen > 1:
                log.warning("second signal: exiting without waiting")
                _write_queued_lines(app, EXIT_NOW_WRITE_SECONDS)  # os._exit skips the writers' own close
                os._exit(1)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        running = await start(app, reuse_port=reuse_port)
        try:
            await stop.wait()
            await running.delay_stop()
        finally:
            await running.stop()

    try:
        asyncio.run(main())
    finally:
        app.access_log.close()
    return 0


def _run_workers(config: Config) -> int:
    checked = load(config, with_metrics=False)  # fail fast, in the parent, on anything unreadable
    checked.access_log.close()
    if checked.proxy.auditor is not None:
        checked.proxy.auditor.close()  # its threads and files belong to the workers, not the parent
    metrics_dir = _shared_metrics_dir() if config.proxy.metrics_bind_address else None
    try:
        return _supervise(config, metrics_dir)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _shared_metrics_dir() -> str:
    """Workers write their metrics to files here and any of them serves the sum (prometheus-client's
    multiprocess mode). A fresh directory for every run: stale files would be counted."""
    path = tempfile.mkdtemp(prefix="kube-oidc-proxy-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _default_stop_signals() -> None:
    """In a new worker: not the supervisor's handler (it would signal the worker's siblings and carry on).
    Until the worker installs its own, a stop signal ends it, as any process that is not serving yet."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _supervise(config: Config, metrics_dir: str | None) -> int:
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def spawn(index: int) -> None:
        with _stop_signals_blocked():  # one that comes meanwhile is handled once the child is known
            if stopping:  # the signal came while a replacement was waiting to start: none is needed now
                return
            pid = os.fork()
            if pid == 0:
                _default_stop_signals()
                code = 1
                diagnostics = setup_logging(config.verbosity)  # the parent's log thread does not survive fork
                try:
                    code = run_worker(config, reuse_port=True)
                except StartupError as exc:
                    print(f"kube-oidc-proxy: error: worker {index}: {exc}", file=sys.stderr)
                finally:
                    diagnostics.close()  # os._exit skips atexit: write the records still queued
                    os._exit(code)
            children[pid] = index

    def forward(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    started = time.monotonic()
    for index in range(config.proxy.workers):
        spawn(index)
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(status)
        if metrics_dir is not None:
            forget_worker(pid)  # its open-connection and watch gauges no longer count
        if stopping:
            exit_code = max(exit_code, code if code > 0 else 0)
            continue
        if time.monotonic() - started < 5 and code > 0:
            # A worker that exits by itself this early could not start, and the others will not either.
            # One killed by a signal (the OOM killer, kill -9) says nothing about the configuration.
            forward(signal.SIGTERM, None)
            exit_code = 1
            continue
        log.warning("worker %d exited with %d; starting a new one", index, code)
        time.sleep(WORKER_RESTART_DELAY_SECONDS)
        spawn(index)
    return exit_code


def _raise_open_file_limit() -> None:
    """Every watch and exec holds two sockets; use the hard limit, as Go programs do by default."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(config: Config) -> int:
    diagnostics = setup_logging(config.verbosity)
    _raise_open_file_limit()
    os.environ.pop(MULTIPROC_ENV, None)  # one process: plain in-memory metrics, whatever the environment says
    try:
        if config.proxy.workers > 1:
            return _run_workers(config)
        return run_worker(config, reuse_port=False)
    finally:
        diagnostics.close()
