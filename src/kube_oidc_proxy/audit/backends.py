"""Where audit events go: a log file (kube-apiserver's rotation flags) or a webhook (an EventList POSTed to
the server of a kubeconfig), each in ``blocking`` or ``batch`` mode.

Batch mode (``Batcher``) never makes a request wait: events go into a bounded buffer that a thread drains
in batches of up to ``max_size`` every ``max_wait`` (throttled when asked); a full buffer drops the event,
counts it and logs it. Blocking mode is ``groupcommit``. The webhook is retried with exponential backoff
from ``initial_backoff``; a sink that gives up raises, and its caller counts and logs the lost events.
The log file's rotated backups are compressed and pruned by ``logbackups``, in a thread of its own.
"""

from __future__ import annotations

import datetime
import http.client
import os
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol
from urllib.parse import urlsplit

from kube_oidc_proxy.audit.logbackups import BackupKeeper, Compressor, backup_path, gzip_file
from kube_oidc_proxy.errors import describe

WEBHOOK_RETRIES: Final = 5  # kube-apiserver: wait.Backoff{Factor: 1.5, Steps: 5}
WEBHOOK_TIMEOUT_SECONDS: Final = 30.0
BATCH_POLL_SECONDS: Final = 0.05  # batch mode writes within this long (or --audit-*-batch-max-wait)


class SinkError(OSError):
    """A sink gave up on a batch (after its retries)."""


class Sink(Protocol):
    name: str

    def write(self, events: list[bytes]) -> None:
        """Deliver the lines, or raise (OSError, SinkError): the caller counts and logs the loss."""
        ...

    def flush(self) -> None:
        """Hand what ``write`` buffered to the operating system."""
        ...

    def close(self) -> None: ...


LUMBERJACK_DEFAULT_MAX_SIZE_MB: Final = 100


class LogFile:
    """JSON or legacy lines appended to a file (or stdout for ``-``), rotated like lumberjack.

    A write that would pass ``max_size_mb`` first renames the file to its backup name and opens a new one
    (cheap: it stays on the writer's path, so a blocking-mode request still waits only for its own write);
    compressing and pruning the backups is ``BackupKeeper``'s, in its own thread."""

    name = "log"

    def __init__(
        self,
        path: str,
        *,
        max_size_mb: int = 0,
        max_backups: int = 0,
        max_age_days: int = 0,
        compress: bool = False,
        compressor: Compressor = gzip_file,
    ) -> None:
        self.path = path
        # lumberjack, which kube-apiserver's --audit-log-maxsize feeds, reads 0 as its default of 100 MB:
        # a file kube-apiserver would rotate must not grow here until the disk is full.
        self._max_bytes = (max_size_mb or LUMBERJACK_DEFAULT_MAX_SIZE_MB) * 1024 * 1024
        self._lock = threading.Lock()
        self._file: BinaryIO = sys.stdout.buffer if path == "-" else open(path, "ab")  # noqa: SIM115
        self._size = 0 if path == "-" else os.fstat(self._file.fileno()).st_size
        self.backups = BackupKeeper(
            path, max_backups=max_backups, max_age_days=max_age_days, compress=compress, compressor=compressor
        )

    def write(self, events: list[bytes]) -> None:
        with self._lock:
            self._append(b"".join(events))

    def write_now(self, events: list[bytes]) -> None:
        """``write()`` and ``flush()`` in one: blocking mode's write, on the event loop."""
        with self._lock:
            self._append(b"".join(events))
            self._file.flush()

    def _append(self, data: bytes) -> None:
        """Under the lock: rotate first if ``data`` would take the file past its size, then write it."""
        if self._max_bytes and self.path != "-" and self._size and self._size + len(data) > self._max_bytes:
            self._rotate()
        self._file.write(data)
        self._size += len(data)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        os.rename(self.path, backup_path(self.path, datetime.datetime.now(datetime.UTC)))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        self.backups.request()

    def close(self) -> None:
        """Flush and close the file, then wait for a compression or pruning that is under way."""
        with self._lock:
            self._file.flush()
            if self.path != "-":
                self._file.close()
        self.backups.close()


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    ssl_context: ssl.SSLContext | None
    token: str = ""
    server_hostname: str = ""


class Webhook:
    """POSTs an ``audit.k8s.io/v1`` EventList per batch to the kubeconfig's server."""

    name = "webhook"

    def __init__(self, target: WebhookTarget, *, initial_backoff: float = 10.0, max_batch_bytes: int = 0) -> None:
        self.target = target
        self._initial_backoff = initial_backoff
        self._max_batch_bytes = max_batch_bytes  # --audit-webhook-truncate-max-batch-size; 0: no limit
        self.posts = 0
        self.failures = 0

    def write(self, events: list[bytes]) -> None:
        """One EventList per call, or several when ``max_batch_bytes`` splits it."""
        for part in _split(events, self._max_batch_bytes):
            self._post_events(part)

    def _post_events(self, events: list[bytes]) -> None:
        body = (
            b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
            + b",".join(e.rstrip(b"\n") for e in events)
            + b"]}"
        )
        delay = self._initial_backoff
        for attempt in range(1, WEBHOOK_RETRIES + 1):
            try:
                status = self._post(body)
                if status < 300:
                    self.posts += 1
                    return
                error = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                error = describe(exc)
            if attempt == WEBHOOK_RETRIES:
                break
            time.sleep(delay)
            delay *= 1.5
        self.failures += 1
        raise SinkError(f"POST {self.peer}: {WEBHOOK_RETRIES} attempts failed, the last with {error}")

    @property
    def peer(self) -> str:
        """The webhook's URL for messages, without user info or query (either could hold a secret)."""
        url = urlsplit(self.target.url)
        host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname or ""
        return f"{url.scheme}://{host}{f':{url.port}' if url.port else ''}{url.path}"

    def _post(self, body: bytes) -> int:
        url = urlsplit(self.target.url)
        host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=WEBHOOK_TIMEOUT_SECONDS, context=self.target.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=WEBHOOK_TIMEOUT_SECONDS)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        try:
            conn.request("POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body, headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def flush(self) -> None:
        pass  # every write is a POST

    def close(self) -> None:
        pass


def _split(events: list[bytes], max_bytes: int) -> list[list[bytes]]:
    if not max_bytes:
        return [events]
    parts: list[list[bytes]] = [[]]
    size = 0
    for event in events:
        if parts[-1] and size + len(event) > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(event)
        size += len(event)
    return parts


@dataclass(frozen=True)
class BatchSettings:
    buffer_size: int = 10_000
    max_size: int = 400
    max_wait: float = 30.0
    throttle_qps: float = 0.0  # 0: no throttle
    throttle_burst: int = 0


class Batcher:
    """Batch mode: the caller never waits. Events wait in a bounded buffer (``buffer_size``; more are
    dropped, counted and logged) that a thread drains every ``BATCH_POLL_SECONDS``, sending batches of
    ``max_size`` at once and a smaller one once its first event has waited ``max_wait``, throttled when
    asked. The thread is never woken per event: on a busy proxy that cost the request path more than the
    event itself (it has to take the GIL from the event loop)."""

    def __init__(
        self,
        sink: Sink,
        settings: BatchSettings,
        on_drop: Callable[[str], None],
        on_failure: Callable[[str, BaseException, int], None],
    ) -> None:
        self._sink = sink
        self._settings = settings
        self._on_drop = on_drop
        self._on_failure = on_failure
        self._events: deque[bytes] = deque()  # append and popleft are atomic: no lock on the request path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"audit-{sink.name}", daemon=True)
        self._last_batch = 0.0
        self._thread.start()

    def add(self, event: bytes) -> None:
        if len(self._events) >= self._settings.buffer_size:
            self._on_drop(self._sink.name)
        else:
            self._events.append(event)

    def _run(self) -> None:
        max_size, max_wait = self._settings.max_size, self._settings.max_wait
        batch: list[bytes] = []
        first_at = 0.0
        while True:
            stopping = self._stopping.wait(BATCH_POLL_SECONDS)
            full: list[list[bytes]] = []
            while self._events:
                if not batch:
                    first_at = time.monotonic()
                batch.append(self._events.popleft())
                if len(batch) >= max_size:
                    full.append(batch)
                    batch = []
            if batch and (stopping or time.monotonic() - first_at >= max_wait):
                full.append(batch)
                batch = []
            for ready in full:
                self._throttle()
                self._deliver(ready)
            if full:
                self._flush()
            if stopping:
                return

    def _deliver(self, batch: list[bytes]) -> None:
        try:
            self._sink.write(batch)
        except Exception as exc:
            self._on_failure(self._sink.name, exc, len(batch))

    def _flush(self) -> None:
        try:
            self._sink.flush()
        except Exception as exc:
            self._on_failure(self._sink.name, exc, 0)

    def _throttle(self) -> None:
        qps = self._settings.throttle_qps
        if qps > 0:
            wait = self._last_batch + 1.0 / qps - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_batch = time.monotonic()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is waiting, then stop."""
        self._stopping.set()
        self._thread.join(timeout)
        self._sink.close()
