"""kube-apiserver killed (SIGKILL, SIGTERM) and started again under real traffic through the proxy, and a
kube-apiserver that accepts connections but never answers.

What a user would notice, and what each drill asserts: a request in flight ends (a truncated list is an
error, a watch stream closes, exec and cp exit non-zero with a message), nothing hangs; no create is sent
twice; once kube-apiserver is back every client succeeds again within seconds, the first request included
(no stale pooled connection); /ready follows kube-apiserver. Against a kube-apiserver that never answers,
``--request-timeout`` bounds every request, other clients are answered meanwhile, and the proxy does not
pile up connections to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kube_oidc_proxy.server.probe import UPSTREAM_CHECK_TIMEOUT_SECONDS
from tests.e2e.cluster.cluster import NAMESPACE, Cluster
from tests.e2e.cluster.proxy import Proxy, probe_status
from tests.e2e.kube import Kubectl

Figure = Callable[[str], None]

# Bounds with room for a loaded 2-core machine; the figures printed say what was actually observed.
STREAM_END_SECONDS = 15.0  # a stream in flight ends after kube-apiserver dies
RECOVERY_SECONDS = 15.0  # every client succeeds again after kube-apiserver's /readyz is 200
SIGNALS = [pytest.param(signal.SIGKILL, id="sigkill"), pytest.param(signal.SIGTERM, id="sigterm")]


# -- helpers ---------------------------------------------------------------------------------------


def _tls(cluster: Cluster) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cluster.ca_file))


def _request(
    proxy: Proxy, token: str, method: str, path: str, body: Any = None, timeout: float = 30
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=_tls(proxy.cluster), timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _configmap(name: str, label: str, data: str = "x") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"drill": label}},
        "data": {"payload": data},
    }


CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


@contextlib.contextmanager
def _configmaps_labelled(cluster: Cluster, label: str) -> Iterator[None]:
    """Leaves the e2e namespace as it was: the drill's ConfigMaps are deleted, kube-apiserver up or not."""
    try:
        yield
    finally:
        if not cluster.apiserver.alive():
            cluster.start_apiserver_again()
        query = urllib.parse.urlencode({"labelSelector": f"drill={label}"})
        cluster.api().request("DELETE", f"{CONFIGMAPS}?{query}")


@contextlib.contextmanager
def _apiserver_restored(cluster: Cluster) -> Iterator[None]:
    """A drill that fails half-way still leaves kube-apiserver running for the next test."""
    try:
        yield
    finally:
        if not cluster.apiserver.alive():
            cluster.start_apiserver_again()


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until true; the seconds it took. A deadline, not a sleep standing in for an event."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic() - started


def _ready_status(port: int, timeout: float = 10) -> int:
    """/ready's status; it may take up to UPSTREAM_CHECK_TIMEOUT_SECONDS when kube-apiserver hangs."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _audit_events(cluster: Cluster) -> list[dict[str, Any]]:
    events = []
    for line in cluster.audit_log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


# -- a list in flight ------------------------------------------------------------------------------

LIST_OBJECTS = 240
LIST_OBJECT_BYTES = 200 * 1024  # 48 MB in all: more than every socket buffer on the path can hold


@pytest.mark.parametrize("sig", SIGNALS)
def test_list_in_flight_ends_with_an_error_and_succeeds_after_the_restart(
    cluster: Cluster, proxy: Proxy, alice: Kubectl, figure: Figure, sig: signal.Signals
) -> None:
    label = "list"
    api = cluster.api()
    with _configmaps_labelled(cluster, label):
        for i in range(LIST_OBJECTS):
            api.request("POST", CONFIGMAPS, _configmap(f"drill-list-{i}", label, "x" * LIST_OBJECT_BYTES))
        path = f"{CONFIGMAPS}?{urllib.parse.urlencode({'labelSelector': f'drill={label}'})}"
        conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=_tls(cluster), timeout=60)
        conn.request("GET", path, headers={"Authorization": f"Bearer {alice.token}", "Accept": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        received = len(response.read(64 * 1024))  # the client reads slowly: the list is still on its way

        killed = time.monotonic()
        how = cluster.kill_apiserver(sig)
        error = ""
        try:
            while chunk := response.read(1024 * 1024):
                received += len(chunk)
        except (http.client.HTTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:120]
        ended = time.monotonic() - killed
        conn.close()
        total = LIST_OBJECTS * LIST_OBJECT_BYTES
        assert received < total, "the whole list arrived before kube-apiserver died: the drill tested nothing"
        assert error, f"a list cut at {received} bytes ended as if complete: the client cannot tell"
        assert ended < STREAM_END_SECONDS

        cluster.start_apiserver_again()
        ready = time.monotonic()
        result = alice.run("get", "configmaps", "-l", f"drill={label}", "-o", "name", timeout=120)
        recovered = time.monotonic() - ready
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == LIST_OBJECTS
        assert recovered < RECOVERY_SECONDS
        figure(
            f"list cut after {received / 2**20:.1f} of {total / 2**20:.0f} MiB, client saw {error!r} "
            f"{ended:.2f}s after the {how}; kubectl get succeeded {recovered:.2f}s after kube-apiserver was back"
        )


# -- 200 open watches ------------------------------------------------------------------------------

WATCHERS = 200


@dataclass
class Watcher:
    """A client-go-like watcher over its own HTTP/1.1 connection: watch from a resourceVersion, see the
    stream end, watch again from the last resourceVersion it saw."""

    port: int
    tls: ssl.SSLContext
    token: str
    label: str
    resource_version: str
    names: set[str] = field(default_factory=set)
    ended_at: float = 0.0
    end: str = ""
    attempts: int = 0
    failures: int = 0
    relists: int = 0
    expired: bool = False
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    want: str = ""

    async def watch(self, opened: asyncio.Event | None = None) -> None:
        """One watch request: returns when its stream ended (cleanly or not); raises if it did not start."""
        query = urllib.parse.urlencode(
            {"watch": "1", "labelSelector": f"drill={self.label}", "resourceVersion": self.resource_version}
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.tls)
        try:
            writer.write(
                f"GET {CONFIGMAPS}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
                "Accept: application/json\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                raise ConnectionError(f"watch answered {status}")
            if opened is not None:
                opened.set()
            await self._events(reader)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _events(self, reader: asyncio.StreamReader) -> None:
        buffered = b""
        try:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    self.end = "end of stream"
                    return
                buffered += (await reader.readexactly(size + 2))[:-2]
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    event = json.loads(line)
                    if event["type"] == "ERROR" and event["object"].get("code") == 410:
                        self.expired = True
                    metadata = event["object"].get("metadata", {})
                    self.resource_version = metadata.get("resourceVersion", self.resource_version)
                    self.names.add(metadata.get("name", ""))
                    if self.want and self.want in self.names:
                        self.seen.set()
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError) as exc:
            self.end = type(exc).__name__
        finally:
            self.ended_at = time.monotonic()

    async def follow(self) -> None:
        """Watch again and again, as a reflector does: a second between refused attempts, a list first when
        kube-apiserver says the resourceVersion is too old (410). Runs until cancelled."""
        while True:
            self.attempts += 1
            self.expired = False
            try:
                await self.watch()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                self.failures += 1
                await asyncio.sleep(1.0)
                continue
            if self.expired:
                self.relists += 1
                self.resource_version, names = await asyncio.to_thread(
                    _list, self.port, self.tls, self.token, self.label
                )
                self.names |= names
                if self.want in self.names:
                    self.seen.set()


def _list(port: int, tls: ssl.SSLContext, token: str, label: str) -> tuple[str, set[str]]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=30)
    try:
        query = urllib.parse.urlencode({"labelSelector": f"drill={label}"})
        conn.request("GET", f"{CONFIGMAPS}?{query}", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise ConnectionError(f"list answered {response.status}")
        listed = json.loads(body)
        return listed["metadata"]["resourceVersion"], {item["metadata"]["name"] for item in listed["items"]}
    finally:
        conn.close()


async def _until(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.parametrize("sig", SIGNALS)
async def test_200_watches_end_and_watch_again_after_the_restart(
    cluster: Cluster, proxy: Proxy, alice: Kubectl, figure: Figure, sig: signal.Signals
) -> None:
    label = f"watch-{sig.name.lower()}"
    api = cluster.api()
    with _configmaps_labelled(cluster, label):
        listed = await asyncio.to_thread(
            api.request, "GET", f"{CONFIGMAPS}?{urllib.parse.urlencode({'labelSelector': f'drill={label}'})}"
        )
        rv = listed["metadata"]["resourceVersion"]
        tls = _tls(cluster)
        watchers = [Watcher(proxy.port, tls, alice.token, label, rv, want="before") for _ in range(WATCHERS)]
        tasks = [asyncio.ensure_future(w.watch()) for w in watchers]
        try:
            # Every watch is open end to end once each has seen an object created after it started.
            await asyncio.to_thread(api.request, "POST", CONFIGMAPS, _configmap("before", label))
            await asyncio.wait_for(asyncio.gather(*(w.seen.wait() for w in watchers)), 60)

            killed = time.monotonic()
            how = await asyncio.to_thread(cluster.kill_apiserver, sig)
            done, hung = await asyncio.wait(tasks, timeout=STREAM_END_SECONDS)
            assert not hung, (
                f"{len(hung)} of {WATCHERS} watch streams still open {STREAM_END_SECONDS:g}s after the kill"
            )
            for task in done:
                task.result()  # a watch that raised instead of ending: the exception says why
            last_end = max(w.ended_at for w in watchers) - killed
            ends = sorted({w.end for w in watchers})

            for w in watchers:
                w.want, w.seen = "after", asyncio.Event()
            tasks = [asyncio.ensure_future(w.follow()) for w in watchers]
            await asyncio.to_thread(cluster.start_apiserver_again)
            ready = time.monotonic()
            # A change right after the return: every watcher must learn of it, by its watch or a relist.
            await asyncio.to_thread(api.request, "POST", CONFIGMAPS, _configmap("after", label))
            await _until("every watcher seeing changes again", lambda: all(w.seen.is_set() for w in watchers), 60)
            recovered = time.monotonic() - ready
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert recovered < RECOVERY_SECONDS
        failed = sum(w.failures for w in watchers)
        relists = sum(w.relists for w in watchers)
        figure(
            f"{WATCHERS}/{WATCHERS} watch streams ended ({', '.join(ends)}) within {last_end:.2f}s of the "
            f"{how}; all {WATCHERS} saw the first change after kube-apiserver's return {recovered:.2f}s "
            f"after it ({failed} watch attempts refused while it was down or starting, {relists} relists after 410)"
        )


# -- exec and cp -----------------------------------------------------------------------------------


def _ended(process: Any, timeout: float) -> tuple[int, bytes]:
    try:
        _, err = process.communicate(timeout=timeout)
    except Exception:
        process.kill()
        process.communicate()
        raise
    return int(process.returncode), bytes(err)


@pytest.mark.parametrize("spdy", [pytest.param(False, id="websocket"), pytest.param(True, id="spdy")])
def test_exec_in_flight_exits_non_zero_with_a_message(
    cluster: Cluster, alice: Kubectl, figure: Figure, spdy: bool, tmp_path: Path
) -> None:
    """The same exec straight to kube-apiserver runs beside the one through the proxy: over SPDY, client-go
    reports a connection closed under it as a clean exit 0 (it cannot tell), and the proxy must not do worse."""
    admin = Kubectl(cluster.admin_kubeconfig, "", tmp_path)
    command = ("exec", "web", "--", "sh", "-c", "echo started; exec sleep 60")
    with _apiserver_restored(cluster):
        running = alice.popen(*command, spdy=spdy)
        direct = admin.popen("-n", NAMESPACE, *command, spdy=spdy)
        for process in (running, direct):
            assert process.stdout is not None
            assert process.stdout.readline() == b"started\n"
        killed = time.monotonic()
        cluster.kill_apiserver(signal.SIGKILL)
        code, err = _ended(running, STREAM_END_SECONDS + 15)
        ended = time.monotonic() - killed
        direct_code, direct_err = _ended(direct, STREAM_END_SECONDS + 15)
        assert ended < STREAM_END_SECONDS
        if spdy:
            assert (code, bool(err.strip())) == (direct_code, bool(direct_err.strip())), (err, direct_err)
        else:
            assert code != 0
            assert err.strip(), "kubectl exec ended without saying why"

        cluster.start_apiserver_again()
        ready = time.monotonic()
        again = alice.run("exec", "web", "--", "echo", "again", spdy=spdy)
        recovered = time.monotonic() - ready
        assert again.returncode == 0 and again.stdout == b"again\n", again.stderr
        assert recovered < RECOVERY_SECONDS
    message = (err.decode(errors="replace").strip().splitlines() or ["(nothing)"])[-1][:100]
    figure(
        f"kubectl exec exited {code} {ended:.2f}s after the SIGKILL ({message!r}; straight to kube-apiserver: "
        f"exit {direct_code}); the next exec succeeded {recovered:.2f}s after kube-apiserver was back"
    )


CP_BYTES = 256 * 1024 * 1024


def test_cp_in_flight_exits_non_zero_with_a_message(
    cluster: Cluster, alice: Kubectl, figure: Figure, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for _ in range(CP_BYTES // len(block)):
            out.write(block)
    name = f"drill-{uuid.uuid4().hex[:8]}.bin"
    with _apiserver_restored(cluster):
        copying = alice.popen("cp", str(source), f"web:{name}", "-c", "main")

        def arriving() -> bool:
            assert copying.poll() is None, "kubectl cp finished before kube-apiserver was killed"
            return any(p.stat().st_size > 0 for p in cluster.containers.rglob(name))

        _wait_for("the copy to start arriving in the container", arriving, 60)
        killed = time.monotonic()
        cluster.kill_apiserver(signal.SIGKILL)
        code, err = _ended(copying, STREAM_END_SECONDS + 15)
        ended = time.monotonic() - killed
        arrived = max((p.stat().st_size for p in cluster.containers.rglob(name)), default=0)
        assert code != 0, f"kubectl cp exited 0 though {arrived} of {CP_BYTES} bytes arrived"
        assert err.strip(), "kubectl cp ended without saying why"
        assert ended < STREAM_END_SECONDS

        cluster.start_apiserver_again()
        ready = time.monotonic()
        small = tmp_path / "small.txt"
        small.write_text("after the restart\n")
        again = alice.run("cp", str(small), f"web:{name}.after", "-c", "main")
        recovered = time.monotonic() - ready
        assert again.returncode == 0, again.stderr
        assert recovered < RECOVERY_SECONDS
    for leftover in cluster.containers.rglob(f"{name}*"):
        leftover.unlink()
    message = err.decode(errors="replace").strip().splitlines()[-1][:100]
    figure(
        f"kubectl cp exited {code} {ended:.2f}s after the SIGKILL with {arrived / 2**20:.0f} of "
        f"{CP_BYTES / 2**20:.0f} MiB copied ({message!r}); the next cp succeeded {recovered:.2f}s after"
    )


# -- creates in flight: none sent twice, none lost --------------------------------------------------


@dataclass
class Creator:
    """Creates ConfigMaps with fresh names one after another over one keep-alive connection (a new one
    after an error), never retrying a create itself: a name answered 409 AlreadyExists was sent twice."""

    proxy: Proxy
    token: str
    label: str
    prefix: str
    outcomes: dict[str, int | str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn: http.client.HTTPSConnection | None = None
        n = 0
        while not self.stop.is_set():
            name = f"{self.prefix}-{n}"
            n += 1
            if conn is None:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", self.proxy.port, context=_tls(self.proxy.cluster), timeout=60
                )
            try:
                conn.request(
                    "POST",
                    CONFIGMAPS,
                    body=json.dumps(_configmap(name, self.label)).encode(),
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                self.outcomes[name] = response.status
                if response.status >= 500:
                    time.sleep(0.2)  # kube-apiserver is down: a client's pause between failed attempts
            except (http.client.HTTPException, OSError) as exc:
                self.outcomes[name] = type(exc).__name__
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def created_since(self, count: int) -> int:
        return sum(1 for status in list(self.outcomes.values())[count:] if status == 201)


@pytest.mark.parametrize("sig", SIGNALS)
def test_creates_in_flight_are_never_sent_twice_nor_lost(
    cluster: Cluster, proxy: Proxy, alice: Kubectl, figure: Figure, sig: signal.Signals
) -> None:
    label = f"create-{sig.name.lower()}"
    creators = [Creator(proxy, alice.token, label, f"drill-{label}-{i}") for i in range(4)]
    threads = [threading.Thread(target=c.run, daemon=True) for c in creators]
    with _configmaps_labelled(cluster, label):
        try:
            for thread in threads:
                thread.start()
            _wait_for("creates under way", lambda: all(c.created_since(0) >= 20 for c in creators), 60)
            how = cluster.kill_apiserver(sig)
            marks = [len(c.outcomes) for c in creators]
            cluster.start_apiserver_again()
            _wait_for(
                "creates succeeding again",
                lambda: all(c.created_since(m) >= 20 for c, m in zip(creators, marks, strict=True)),
                RECOVERY_SECONDS + 30,
            )
        finally:
            for c in creators:
                c.stop.set()
            for thread in threads:
                thread.join(60)

        outcomes = {name: status for c in creators for name, status in c.outcomes.items()}
        duplicated_409 = sorted(n for n, s in outcomes.items() if s == 409)
        query = urllib.parse.urlencode({"labelSelector": f"drill={label}"})
        stored = {item["metadata"]["name"] for item in cluster.api().request("GET", f"{CONFIGMAPS}?{query}")["items"]}
        acknowledged = {n for n, s in outcomes.items() if s == 201}
        lost = sorted(acknowledged - stored)
        audit_ids: dict[str, set[str]] = {}
        for event in _audit_events(cluster):
            ref = event.get("objectRef") or {}
            if event.get("verb") == "create" and str(ref.get("name", "")).startswith(f"drill-{label}-"):
                audit_ids.setdefault(ref["name"], set()).add(event["auditID"])
        duplicated_audit = sorted(n for n, ids in audit_ids.items() if len(ids) > 1)
        failed = {n: s for n, s in outcomes.items() if s != 201}
        assert not duplicated_409, f"creates sent twice (409 AlreadyExists to the client): {duplicated_409}"
        assert not duplicated_audit, f"creates kube-apiserver received twice: {duplicated_audit}"
        assert not lost, f"creates answered 201 but not stored: {lost}"
        kinds = sorted({str(s) for s in failed.values()})
        figure(
            f"{len(outcomes)} creates around the {how}: {len(acknowledged)} created, "
            f"{len(failed)} failed while it was down ({', '.join(kinds) or 'none'}), "
            f"0 sent twice (409s and audit events), {len(lost)} lost"
        )


# -- pooled connections, readiness -----------------------------------------------------------------


def test_first_requests_after_the_restart_succeed_and_readiness_follows(
    cluster: Cluster, proxy: Proxy, alice: Kubectl, figure: Figure
) -> None:
    label = "pool"
    with _configmaps_labelled(cluster, label):
        # Fill the proxy's pool with keep-alive connections to this kube-apiserver process.
        results = _parallel(proxy, alice.token, [("GET", f"{CONFIGMAPS}?limit=1", None)] * 16)
        assert all(status == 200 for status, _ in results), results
        assert probe_status(proxy.probe_port) == 200

        cluster.kill_apiserver(signal.SIGKILL)
        # A user's request finds it gone (503): the next probe says so, not one up to 10 s later.
        assert _request(proxy, alice.token, "GET", f"{CONFIGMAPS}?limit=1")[0] == 503
        unready = _wait_for("/ready 503 after that", lambda: probe_status(proxy.probe_port) == 503, 3)

        cluster.start_apiserver_again()
        ready = time.monotonic()
        # The first requests after the return, at once: creates (never retried) as well as reads.
        first: list[tuple[str, str, Any]] = [
            ("POST", CONFIGMAPS, _configmap(f"drill-pool-{i}", label)) for i in range(8)
        ]
        first += [("GET", f"{CONFIGMAPS}?limit=1", None)] * 8
        results = _parallel(proxy, alice.token, first)
        failed = [(status, body[:200]) for status, body in results if status not in (200, 201)]
        assert not failed, f"first requests after kube-apiserver's return failed: {failed}"
        back = _wait_for("/ready 200 again", lambda: probe_status(proxy.probe_port) == 200, RECOVERY_SECONDS)
        back_total = time.monotonic() - ready
    figure(
        f"/ready went 503 {unready:.2f}s after the first request that found kube-apiserver gone, and 200 "
        f"{back_total:.2f}s after kube-apiserver was back ({back:.2f}s after the first requests); "
        f"0 of {len(first)} first requests failed"
    )


def _parallel(proxy: Proxy, token: str, requests: list[tuple[str, str, Any]]) -> list[tuple[int, bytes]]:
    results: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
    start = threading.Barrier(len(requests))

    def one(i: int, method: str, path: str, body: Any) -> None:
        start.wait(30)
        try:
            results[i] = _request(proxy, token, method, path, body)
        except (http.client.HTTPException, OSError) as exc:
            results[i] = (0, repr(exc).encode())

    threads = [threading.Thread(target=one, args=(i, *r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return results


# -- a kube-apiserver that accepts connections and never answers -----------------------------------


class SilentServer:
    """Accepts TCP connections (with ``tls``, completes the handshake too) and never answers a byte; counts
    the connections the proxy still holds open."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = int(self.listener.getsockname()[1])
        self.tls = tls
        self.accepted: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.tls is not None:
                threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()
            else:
                with self.lock:
                    self.accepted.append(conn)

    def _handshake(self, conn: socket.socket) -> None:
        assert self.tls is not None
        try:
            conn.settimeout(10)
            wrapped = self.tls.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        with self.lock:
            self.accepted.append(wrapped)

    def open_connections(self) -> int:
        """Connections the proxy has not closed (a peer's close reads as end of file)."""
        with self.lock:
            still = []
            for conn in self.accepted:
                if _closed_by_peer(conn):
                    conn.close()
                else:
                    still.append(conn)
            self.accepted = still
            return len(still)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for conn in self.accepted:
                conn.close()


def _closed_by_peer(conn: socket.socket) -> bool:
    """Reads (and drops) whatever the proxy sent: an end of file after it means the proxy closed."""
    conn.setblocking(False)
    try:
        while True:
            if conn.recv(65536) == b"":
                return True
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def _samples(silent: SilentServer, wave: threading.Thread) -> Iterator[int]:
    """Open connections to the stand-in, every 0.1 s while the wave lasts."""
    while wave.is_alive():
        yield silent.open_connections()
        time.sleep(0.1)


REQUEST_TIMEOUT = 2.0
HANGING_REQUESTS = 24


@pytest.mark.parametrize("tls", [pytest.param(False, id="tcp-only"), pytest.param(True, id="tls-no-http")])
def test_a_kube_apiserver_that_never_answers(cluster: Cluster, alice: Kubectl, figure: Figure, tls: bool) -> None:
    server_tls = None
    if tls:
        assert cluster.ca is not None
        pair = cluster.ca.serving("silent-apiserver")
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(pair.cert), str(pair.key))
    silent = SilentServer(server_tls)
    stuck = Proxy(cluster)
    try:
        stuck.start(
            f"--request-timeout={REQUEST_TIMEOUT:g}s", wait_ready=False, server=f"https://127.0.0.1:{silent.port}"
        )
        timings: list[tuple[int, float]] = []
        answers: list[str] = []  # anything but a 504

        def wave() -> None:
            requests = [("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", None)] * HANGING_REQUESTS
            started = time.monotonic()
            results = _parallel(stuck, alice.token, requests)
            timings.extend((status, time.monotonic() - started) for status, _ in results)
            answers.extend(f"{s} {b[:200]!r}" for s, b in results if s != 504)

        first = threading.Thread(target=wave)
        first.start()
        held: list[int] = []
        sampling = threading.Thread(target=lambda: held.extend(_samples(silent, first)), daemon=True)
        sampling.start()
        # Meanwhile the same proxy answers what needs no kube-apiserver at once.
        _wait_for("requests hanging on the stand-in", lambda: silent.open_connections() > 0, 10)
        started = time.monotonic()
        unauthenticated = _request(stuck, "not-a-token", "GET", "/api")[0]
        answered_401 = time.monotonic() - started
        assert unauthenticated == 401
        started = time.monotonic()
        assert _ready_status(stuck.probe_port) == 503
        answered_ready = time.monotonic() - started
        first.join(120)
        sampling.join(10)
        held_during = max(held)
        wave()  # a second wave: the pool must not have kept the stuck connections of the first
        try:
            _wait_for("stuck connections closed", lambda: silent.open_connections() <= 2, 15)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {silent.open_connections()} still open") from None
        held_after = silent.open_connections()
    finally:
        stuck.stop()
        silent.close()
    assert len(timings) == 2 * HANGING_REQUESTS and not answers, answers
    slowest = max(t for _, t in timings)
    assert min(t for _, t in timings) >= REQUEST_TIMEOUT * 0.9
    assert slowest < REQUEST_TIMEOUT + 5, f"504s arrived up to {slowest:.1f}s, --request-timeout={REQUEST_TIMEOUT:g}s"
    assert answered_401 < 3
    assert answered_ready < UPSTREAM_CHECK_TIMEOUT_SECONDS + 3  # it asks kube-apiserver's /readyz, bounded
    assert 0 < held_during <= HANGING_REQUESTS + 2
    figure(
        f"{len(timings)} requests answered 504 in {min(t for _, t in timings):.2f}-{slowest:.2f}s "
        f"(--request-timeout={REQUEST_TIMEOUT:g}s); a 401 answered in {answered_401:.2f}s and /ready (503) "
        f"in {answered_ready:.2f}s meanwhile; "
        f"at most {held_during} connections open to the stand-in during a wave of {HANGING_REQUESTS}, "
        f"{held_after} after two waves"
    )
