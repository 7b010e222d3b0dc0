"""A started app in one process: listen, keep it fresh, serve until a signal, stop gracefully.

``start`` opens the listeners of an ``App`` built by ``wiring.load`` and starts its housekeeping (certificate
and authentication-config reloads, gauges, heap trimming); ``Running`` says where it listens and stops it
(``delay_stop`` for --shutdown-delay-duration, then ``stop``) and re-reads its files at once on ``reload``.
``run_worker`` is one whole process's life: load, start, wait for SIGTERM/SIGINT, stop; SIGHUP is a
``reload``, never an exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Final

from kube_oidc_proxy.config import Config, split_host_port
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.heaptrim import HeapTrimmer
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.observe.diagformat import DEBUG_VERBOSITY
from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.observe.linequeue import TextStream
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.server.plainhttp import Handler, Reply, start_plain_server
from kube_oidc_proxy.server.probe import Readiness, start_probe_server
from kube_oidc_proxy.server.wiring import App, load

log = logging.getLogger("kop.app")

TLS_RELOAD_POLL_SECONDS: Final = 2.0
EXIT_NOW_WRITE_SECONDS: Final = 0.5  # on a second signal: how long the queued log lines may take to write


def setup_logging(
    verbosity: int, stream: TextStream | None = None, *, logging_format: str = "text"
) -> BoundedQueueHandler:
    """Diagnostics to stderr, one line per record (klog's text or component-base's JSON, ``--logging-format``),
    through a bounded queue, so a slow stderr never blocks the event loop and a stalled one never grows memory
    (observe/diaglog.py). Close the handler to write what is queued."""
    handler = BoundedQueueHandler(stream if stream is not None else sys.stderr, logging_format=logging_format)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("kop").setLevel(logging.DEBUG if verbosity >= DEBUG_VERBOSITY else logging.INFO)
    return handler


def _sample(app: App, metrics: Metrics) -> None:
    """What only a look at this worker can tell: its loop's gauges, its open tunnels' bytes, its keys' age."""
    metrics.sample_loop(app.proxy.inflight.reads, app.proxy.inflight.mutating)
    app.proxy.count_tunnel_bytes()
    for source in app.key_sources:
        if source.fetched_at:  # until then the age stays +Inf (Metrics.jwks_fetch_counter)
            metrics.jwks_age.labels(source.issuer_url).set(time.time() - source.fetched_at)


def hangup_line(certificates: bool, authentication: bool | None) -> str:
    """What a SIGHUP did, in one line: each file group reloaded, or kept (unchanged, or changed but invalid:
    the reload's own warning says why). ``authentication`` is None without --authentication-config."""
    done = [f"serving certificates {'reloaded' if certificates else 'kept'}"]
    if authentication is not None:
        done.append(f"--authentication-config {'reloaded' if authentication else 'kept'}")
    return "SIGHUP: re-read the files: " + ", ".join(done)


async def _housekeeping(app: App, wake: asyncio.Event) -> None:
    """Every few seconds, or at once when ``wake`` is set (SIGHUP): reload rotated serving certificates and a
    changed --authentication-config, update the key-set age, task gauges and tunnel bytes; once a minute, give
    freed heap memory back (``heaptrim``). One loop does both, so two reloads never overlap."""
    trimmer = HeapTrimmer()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), TLS_RELOAD_POLL_SECONDS)
        asked = wake.is_set()
        wake.clear()
        certificates = app.tls.reload_if_changed()
        authentication = await app.authentication.reload_if_changed()
        if asked:
            log.info(hangup_line(certificates, authentication if app.config.oidc.authentication_config else None))
        trimmer.due(time.monotonic())
        if app.metrics is not None:
            _sample(app, app.metrics)


@dataclass
class Running:
    """A started app: where it listens, and how to stop it."""

    app: App
    addresses: list[tuple[str, int]]
    probe: asyncio.Server | None
    poller: asyncio.Future[None]
    metrics_server: asyncio.Server | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

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

    def reload(self) -> None:
        """Re-read the serving certificates and --authentication-config now, not at the next poll (SIGHUP)."""
        self.wake.set()

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


def _metrics_handler(app: App, metrics: Metrics) -> Handler:
    async def answer(head: RequestHead) -> Reply:
        if head.target.split(b"?", 1)[0] != b"/metrics":
            return Reply(404, b"text/plain", b"not found; metrics are at /metrics\n")
        _sample(app, metrics)  # this worker's, now; the others' from their housekeeping
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
            _metrics_handler(app, app.metrics),
            app.proxy.tasks,
            reuse_port=reuse_port,
            what="metrics",
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on --metrics-bind-address {address}: {exc.strerror}") from None


async def start(app: App, *, reuse_port: bool = False, wake: asyncio.Event | None = None) -> Running:
    """``wake``: set it to reload the files at once (``Running.reload``); a signal handler can hold it before
    the start."""
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
                Readiness(
                    lambda: app.key_sources,
                    app.proxy,
                    app.client,
                    require_all_issuers=config.proxy.readiness_require_all_issuers,
                ),
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
    wake = wake or asyncio.Event()
    return Running(app, addresses, probe, asyncio.ensure_future(_housekeeping(app, wake)), metrics_server, wake)


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
        wake = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, wake.set)  # a reload (Running.reload), before "serving on" is said
        running = await start(app, reuse_port=reuse_port, wake=wake)
        try:
            await stop.wait()
            await running.delay_stop()
        finally:
            await running.stop()

    try:
        asyncio.run(main())
    finally:
        ignore_hangup()  # the closed loop gave SIGHUP back its default action, which is to exit
        app.access_log.close()
    return 0


def ignore_hangup() -> None:
    """SIGHUP's default action ends the process (exit 129, no drain). Until the loop's reload handler is in
    place, and after it is gone, a SIGHUP does nothing: the files are read at the start anyway."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
