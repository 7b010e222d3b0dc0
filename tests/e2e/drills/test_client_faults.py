"""Drill: thousands of clients that connect and vanish or stall, while legitimate clients carry on.

The attackers: connections reset at once (SO_LINGER 0), half-open ones that send nothing, TLS handshakes
started and abandoned, slowloris on the request head and on the body, and clients that never read their
response. Meanwhile legitimate keep-alive and new-connection clients go through the proxy to the real
kube-apiserver: none of their requests may fail and their p99 latency must stay bounded (compared with the
same load without attackers); afterwards the proxy's open file descriptors return to where they were.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.drills.traffic import Endpoint, Load, Tally, poll

PHASE_SECONDS = 5.0  # legitimate traffic measured this long, without and then with the attackers
RESETS = 2000
HALF_OPEN = 1000
ABANDONED_HANDSHAKES = 500
SLOW_HEADS = 100
SLOW_BODIES = 30
NON_READERS = 10
TRICKLE_EVERY_SECONDS = 1.0
P99_CEILING_SECONDS = 2.0  # a bound with room for a loaded 2-core machine; the figure shows the real ratio
FD_SLACK = 8
GUARD_SECONDS = 60.0


@pytest.fixture(scope="module")
def token(cluster: Cluster) -> str:
    return id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")


@pytest.fixture
def target(cluster: Cluster) -> Iterator[Proxy]:
    proxy = Proxy(cluster)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Attackers:
    """Each class of misbehaving client on its own thread; ``close`` makes them all vanish."""

    def __init__(self, port: int, ca_file: Path, token: str) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(ca_file))
        self.token = token
        self.held: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=f, daemon=True)
            for f in (self._resets, self._half_open, self._abandoned, self._slow, self._non_readers)
        ]
        for thread in self._threads:
            thread.start()

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def _hold(self, sock: socket.socket, *, trickle: bool = False) -> None:
        with self.lock:
            (self.trickling if trickle else self.held).append(sock)

    def _resets(self) -> None:
        for _ in range(RESETS):
            if self._stop.is_set():
                return
            with contextlib.suppress(OSError):
                sock = self._connect()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # an RST, not a FIN
                self._count("reset")

    def _half_open(self) -> None:
        for _ in range(HALF_OPEN):
            if self._stop.is_set():
                return
            with contextlib.suppress(OSError):
                self._hold(self._connect())
                self._count("half-open")

    def _abandoned(self) -> None:
        for _ in range(ABANDONED_HANDSHAKES):
            if self._stop.is_set():
                return
            with contextlib.suppress(OSError):
                sock = self._connect()
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = self.ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.do_handshake()
                sock.sendall(outgoing.read())  # the ClientHello, and nothing after it
                self._hold(sock)
                self._count("abandoned handshake")

    def _tls(self) -> ssl.SSLSocket:
        return self.ctx.wrap_socket(self._connect(), server_hostname="127.0.0.1")

    def _slow(self) -> None:
        auth = f"Authorization: Bearer {self.token}\r\n"
        for _ in range(SLOW_HEADS):
            with contextlib.suppress(OSError):
                sock = self._tls()
                sock.sendall(b"GET /api/v1/namespaces/e2e/pods HTTP/1.1\r\nHost: x\r\n")
                self._hold(sock, trickle=True)
                self._count("slow head")
        head = (
            "POST /api/v1/namespaces/e2e/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: 1000000\r\n\r\n{{"
        ).encode()
        for _ in range(SLOW_BODIES):
            with contextlib.suppress(OSError):
                sock = self._tls()
                sock.sendall(head)
                self._hold(sock, trickle=True)
                self._count("slow body")
        while not self._stop.wait(TRICKLE_EVERY_SECONDS):  # a byte now and then keeps each one going
            with self.lock:
                slow = list(self.trickling)
            for held in slow:
                with contextlib.suppress(OSError):
                    held.send(b"X-A: b\r\n")  # a header line, or body bytes

    def _non_readers(self) -> None:
        request = f"GET /openapi/v2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.token}\r\n\r\n".encode()
        for _ in range(NON_READERS):
            with contextlib.suppress(OSError):
                raw = self._connect()
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                tls = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                tls.sendall(request * 8)  # a few MB of answers each, never read
                self._hold(tls)
                self._count("never reads")

    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads[:2]) and all(
            self.counts.get(k, 0) > 0 for k in ("slow head", "slow body", "never reads", "abandoned handshake")
        )

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(GUARD_SECONDS)
        for sock in self.held + self.trickling:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()


def _phase(endpoint: Endpoint, ca_file: Path, token: str, until: Callable[[], bool]) -> Tally:
    load = Load(lambda: endpoint, ca_file, token, keepalive=2, fresh=2)
    try:
        poll("the phase's traffic", until, GUARD_SECONDS)
    finally:
        tally = load.stop()
    return tally


def test_misbehaving_clients_do_not_hurt_the_others(
    cluster: Cluster, target: Proxy, token: str, figure: Callable[[str], None]
) -> None:
    assert target.process is not None
    pid = target.process.popen.pid
    endpoint = Endpoint("proxy", target.port, target.probe_port)
    baseline_fds = _open_fds(pid)

    started = time.monotonic()
    quiet = _phase(endpoint, cluster.ca_file, token, lambda: time.monotonic() - started > PHASE_SECONDS)

    attackers = Attackers(target.port, cluster.ca_file, token)
    try:
        attack_started = time.monotonic()
        attacked = _phase(
            endpoint,
            cluster.ca_file,
            token,
            lambda: attackers.done() and time.monotonic() - attack_started > PHASE_SECONDS,
        )
        peak_fds = _open_fds(pid)
    finally:
        attackers.close()
    vanished = time.monotonic()
    assert target.process.alive()

    poll("the proxy's descriptors return to the baseline", lambda: _open_fds(pid) <= baseline_fds + FD_SLACK, 30)
    settled = time.monotonic() - vanished
    assert quiet.lost == [] and quiet.refused == []
    assert attacked.lost == [], attacked.lost[:5]
    assert attacked.refused == [], attacked.refused[:5]
    assert attacked.ok > 50
    assert attacked.p99() < P99_CEILING_SECONDS
    assert attackers.counts.get("reset", 0) >= RESETS * 0.9 and attackers.counts.get("half-open", 0) >= HALF_OPEN * 0.9
    kinds = ", ".join(f"{n} {kind}" for kind, n in attackers.counts.items())
    figure(
        f"{sum(attackers.counts.values())} misbehaving clients ({kinds}); "
        f"legitimate: {attacked.ok} requests, 0 failed, p99 {attacked.p99() * 1000:.0f} ms under attack vs "
        f"{quiet.p99() * 1000:.0f} ms without ({quiet.ok} requests); proxy fds {baseline_fds} -> {peak_fds} -> "
        f"back within {FD_SLACK} of the baseline {settled:.1f}s after the attackers vanished"
    )
