"""Steady client traffic for the drills, with a layer-4 load balancer in front of one or more proxies.

Blocking ``http.client`` in threads, as a plain HTTPS client is: keep-alive clients that hold their
connection until the server closes it, clients that open a new connection for every request, watches and
the accounting of what went wrong. The balancer behaves as kube-proxy or an NLB does: a new connection goes
to an endpoint in rotation; an endpoint whose ``/ready`` fails is taken out ``removal_seconds`` after the
first failure (endpoint propagation); established connections stay where they are.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

PATH: Final = "/api/v1/namespaces/e2e/pods?limit=1"
PACE_SECONDS: Final = 0.02  # between one client's requests: steady load, not a saturation test
PROBE_EVERY_SECONDS: Final = 0.1
REQUEST_TIMEOUT_SECONDS: Final = 30.0
# What a client sees when the server closed a kept-alive connection just as the request was sent: nothing
# of the answer arrived, so the request is sent again on a new connection (Go's net/http and urllib3 do so).
NOTHING_RECEIVED: Final = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def ready_status(probe_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{probe_port}/ready", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0  # the probe listener is gone too


@dataclass
class Endpoint:
    name: str
    port: int
    probe_port: int
    failing_since: float | None = None
    removed_at: float | None = None
    connections: int = 0  # new connections the balancer sent here
    connections_while_failing: int = 0  # ... after /ready failed, before the endpoint was removed


class Balancer:
    def __init__(self, endpoints: list[Endpoint], removal_seconds: float) -> None:
        self.endpoints = endpoints
        self.removal_seconds = removal_seconds
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe_loop, daemon=True)
        self._thread.start()

    def pick(self) -> Endpoint:
        with self._lock:
            live = [e for e in self.endpoints if e.removed_at is None]
            endpoint = live[next(self._next) % len(live)]
            endpoint.connections += 1
            if endpoint.failing_since is not None:
                endpoint.connections_while_failing += 1
            return endpoint

    def _probe_loop(self) -> None:
        while not self._stop.wait(PROBE_EVERY_SECONDS):
            for endpoint in self.endpoints:
                if endpoint.removed_at is not None:
                    continue
                now = time.monotonic()
                if endpoint.failing_since is None and ready_status(endpoint.probe_port) != 200:
                    endpoint.failing_since = now
                elif endpoint.failing_since is not None and now - endpoint.failing_since >= self.removal_seconds:
                    with self._lock:
                        endpoint.removed_at = now

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Tally:
    ok: int = 0
    retried: int = 0  # sent again after a kept-alive connection was closed under it (nothing received)
    refused: list[str] = field(default_factory=list)  # connections not accepted
    lost: list[str] = field(default_factory=list)  # requests that failed
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attr: str, what: str = "") -> None:
        with self.lock:
            if attr in ("refused", "lost"):
                getattr(self, attr).append(what)
            else:
                setattr(self, attr, getattr(self, attr) + 1)

    def latency(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def p99(self) -> float:
        with self.lock:
            ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


def tls_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


class Load:
    """``keepalive`` clients on persistent connections and ``fresh`` clients opening one per request,
    all through ``pick`` (a balancer's, or one fixed endpoint's)."""

    def __init__(self, pick: Callable[[], Endpoint], ca_file: Path, token: str, *, keepalive: int, fresh: int) -> None:
        self.pick = pick
        self.ctx = tls_context(ca_file)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(True,), daemon=True) for _ in range(keepalive)]
        self._threads += [threading.Thread(target=self._client, args=(False,), daemon=True) for _ in range(fresh)]
        for thread in self._threads:
            thread.start()

    def _connect(self) -> http.client.HTTPSConnection | None:
        endpoint = self.pick()
        conn = http.client.HTTPSConnection(
            "127.0.0.1", endpoint.port, context=self.ctx, timeout=REQUEST_TIMEOUT_SECONDS
        )
        try:
            conn.connect()
        except ConnectionRefusedError:
            self.tally.add("refused", f"{endpoint.name}: connection refused")
            return None
        except (OSError, ssl.SSLError) as exc:
            self.tally.add("refused", f"{endpoint.name}: {exc!r} during the TLS handshake")
            return None
        return conn

    def _client(self, keepalive: bool) -> None:
        conn: http.client.HTTPSConnection | None = None
        reused = False
        while not self._stop.is_set():
            if conn is None:
                conn, reused = self._connect(), False
                if conn is None:
                    continue
            started = time.monotonic()
            try:
                conn.request("GET", PATH, headers=self.headers)
                response = conn.getresponse()
                response.read()
            except NOTHING_RECEIVED as exc:
                conn.close()
                conn = None
                self.tally.add("retried" if reused else "lost", repr(exc))
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = None
                self.tally.add("lost", repr(exc))
                continue
            self.tally.latency(time.monotonic() - started)
            self.tally.add("ok" if response.status == 200 else "lost", f"HTTP {response.status}")
            reused = True
            if not keepalive or response.will_close:
                conn.close()
                conn = None
            self._stop.wait(PACE_SECONDS)
        if conn is not None:
            conn.close()

    def stop(self) -> Tally:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_SECONDS + 5)
        return self.tally


class Watch:
    """A watch of config maps in e2e on one endpoint, read on its own thread: the events it saw and how it
    ended (a complete chunked body is a clean end: client-go simply watches again)."""

    def __init__(self, port: int, ca_file: Path, token: str) -> None:
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(ca_file), timeout=120)
        self.conn.request(
            "GET",
            "/api/v1/namespaces/e2e/configmaps?watch=1&timeoutSeconds=600&allowWatchBookmarks=false",
            headers={"Authorization": f"Bearer {token}"},
        )
        response = self.conn.getresponse()
        assert response.status == 200, response.status
        self.response = response
        self.sock: socket.socket = self.conn.sock
        self.local_port: int = self.sock.getsockname()[1]
        self.names: list[str] = []
        self.ended_at: float | None = None
        self.end = ""  # "clean", or what was raised
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                event = json.loads(line)
                self.names.append(event["object"]["metadata"]["name"])
            self.end = "clean"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.end = repr(exc)
        self.ended_at = time.monotonic()

    def close(self) -> None:
        # Wake the reader first: closing the response under it would wait for its read (up to the timeout).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.conn.close()


def poll(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Until ``check()``; ``timeout`` is a guard, never a wait."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.02)
