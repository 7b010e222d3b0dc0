"""The process entry point and ``--workers``: one worker in this process, or a supervisor of several.

``run`` sets up logging and picks one or the other. With ``--workers N`` the parent checks the
configuration once, forks N workers that each load and serve on the same port (SO_REUSEPORT: the kernel
spreads connections), forwards signals to them (SIGHUP too: each worker reloads its files) and restarts one
that dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Final

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.observe.metrics import MULTIPROC_ENV, forget_worker
from kube_oidc_proxy.server.lifecycle import ignore_hangup, run_worker, setup_logging
from kube_oidc_proxy.server.wiring import load

log = logging.getLogger("kop.app")

WORKER_RESTART_DELAY_SECONDS: Final = 1.0
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
FORWARDED_SIGNALS: Final = (*STOP_SIGNALS, signal.SIGHUP)


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
def _forwarded_signals_blocked() -> Iterator[None]:
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)


def _default_worker_signals() -> None:
    """In a new worker: not the supervisor's handlers (they would signal the worker's siblings and carry on).
    Until the worker installs its own, a stop signal ends it, as any process that is not serving yet, and
    SIGHUP does nothing (the worker reads its files as it starts)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    ignore_hangup()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)


def _handle_signals(stop: Callable[[int, object], None], reload: Callable[[int, object], None]) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    signal.signal(signal.SIGHUP, reload)  # passed on: a reload in each worker, not a stop


def _supervise(config: Config, metrics_dir: str | None) -> int:
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def spawn(index: int) -> None:
        with _forwarded_signals_blocked():  # one that comes meanwhile is handled once the child is known
            if stopping:  # the signal came while a replacement was waiting to start: none is needed now
                return
            pid = os.fork()
            if pid == 0:
                _default_worker_signals()
                code = 1
                # the parent's log thread does not survive fork
                diagnostics = setup_logging(config.verbosity, logging_format=config.logging_format)
                try:
                    code = run_worker(config, reuse_port=True)
                except StartupError as exc:
                    print(f"kube-oidc-proxy: error: worker {index}: {exc}", file=sys.stderr)
                finally:
                    diagnostics.close()  # os._exit skips atexit: write the records still queued
                    os._exit(code)
            children[pid] = index

    def pass_on(signum: int, _: object = None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def forward(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        pass_on(signum)

    _handle_signals(stop=forward, reload=pass_on)
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
    ignore_hangup()  # from the start: loading the configuration takes a moment
    diagnostics = setup_logging(config.verbosity, logging_format=config.logging_format)
    _raise_open_file_limit()
    os.environ.pop(MULTIPROC_ENV, None)  # one process: plain in-memory metrics, whatever the environment says
    try:
        if config.proxy.workers > 1:
            return _run_workers(config)
        return run_worker(config, reuse_port=False)
    finally:
        diagnostics.close()
