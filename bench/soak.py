"""A soak: mixed traffic through the proxy to the real end-to-end cluster (kube-apiserver, Keycloak, the
fakelet) for a while, sampling the proxy's resident memory, open file descriptors, event-loop tasks and
connections to kube-apiserver every few seconds into a CSV and a plot. It passes when none of them grows
after the warm-up.

    .venv/bin/python bench/soak.py [--minutes 30] [--out bench/results]     (make soak; SOAK_MINUTES=5)

Traffic, all at once for the whole run:
- 4 clients (the Python kubernetes client) listing and getting pods, creating and deleting ConfigMaps;
- 8 watchers, each watching pods for 1-10 s, then stopping, over and over;
- a kubectl exec every 10 s, and a kubectl port-forward session every 20 s (used, then stopped);
- a request with a bad token every 0.2 s (garbage, or an id token with a flipped signature byte);
- a new TLS connection for each of 10 requests a second (reconnecting clients).

Pass: over the samples after the warm-up (the first fifth of the run, at least 2 minutes), the least-squares
slope of each series is below its bound per 10 minutes: resident memory 2 MB, file descriptors 2, tasks 2,
connections to kube-apiserver 2 (steady traffic: a leak grows with every request, so at these rates even a
few bytes per request would show as tens of megabytes).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import random
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.cluster import build
from tests.e2e.cluster.cluster import NAMESPACE, Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import Kubectl

SAMPLE_EVERY_SECONDS = 5.0
TOKEN_REFRESH_SECONDS = 300.0  # Keycloak's id tokens live 15 minutes
BOUNDS_PER_10_MINUTES = {"rss_mb": 2.0, "fds": 2.0, "tasks": 2.0, "upstream_connections": 2.0}


def say(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


# -- what is sampled -----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections_to(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections of ``pid`` whose remote port is ``port``."""
    mine = socket_inodes(pid)
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in mine:
                count += 1
    return count


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


# -- traffic -------------------------------------------------------------------------------------------------


MAX_FAILURES_KEPT = 20


@dataclass
class Tally:
    ok: Counter[str]
    failed: Counter[str]
    lock: threading.Lock
    failures: list[str] = field(default_factory=list)  # the first few, with when and why

    def count(self, kind: str, ok: bool, why: str = "") -> None:
        with self.lock:
            (self.ok if ok else self.failed)[kind] += 1
            if not ok and len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {kind}: {why or 'not as expected'}")


class Traffic:
    def __init__(self, cluster: Cluster, proxy: Proxy, work: Path, stop: threading.Event) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.work = work
        self.stop = stop
        self.tally = Tally(Counter(), Counter(), threading.Lock())
        self.token = ""
        self.refresh_token()
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))

    def refresh_token(self) -> None:
        self.token = id_token(self.cluster.issuer, self.cluster.ca_file, "alice", "alice-password")

    def kubectl(self) -> Kubectl:
        home = self.work / "kubectl"
        home.mkdir(exist_ok=True)
        return Kubectl.through(self.proxy, self.token, home)

    def api(self) -> Any:
        from kubernetes import client  # noqa: PLC0415

        configuration = client.Configuration()
        configuration.host = self.proxy.url
        configuration.ssl_ca_cert = str(self.cluster.ca_file)
        configuration.api_key = {"authorization": f"Bearer {self.token}"}
        return client.CoreV1Api(client.ApiClient(configuration))

    def loop(self, kind: str, pause: float, step: Callable[[], bool]) -> None:
        while not self.stop.wait(pause):
            why = ""
            try:
                ok = step()
            except Exception as exc:  # counted: the soak reports failures, it does not stop on them
                ok, why = False, f"{type(exc).__name__}: {str(exc)[:300]}"
            if self.stop.is_set():
                return  # the run ended under this step (the proxy is being stopped): not a result
            self.tally.count(kind, ok, why)

    # each step returns whether it went as a user would expect

    def requests(self) -> Callable[[], bool]:
        api = self.api()
        issued = self.token

        def step() -> bool:
            nonlocal api, issued
            if issued != self.token:
                api, issued = self.api(), self.token
            api.list_namespaced_pod(NAMESPACE)
            api.read_namespaced_pod("web", NAMESPACE)
            name = f"soak-{secrets.token_hex(4)}"
            body = {"metadata": {"name": name}, "data": {"k": "v" * random.randint(1, 4096)}}
            api.create_namespaced_config_map(NAMESPACE, body)
            api.delete_namespaced_config_map(name, NAMESPACE)
            return True

        return step

    def watches(self) -> Callable[[], bool]:
        watch = importlib.import_module("kubernetes.watch")  # untyped: used through the module, as Any

        def step() -> bool:
            stream = watch.Watch().stream(
                self.api().list_namespaced_pod, NAMESPACE, timeout_seconds=random.randint(1, 10)
            )
            return sum(1 for _ in stream) >= 2  # the ADDED events of web and db at least

        return step

    def exec_session(self) -> bool:
        result = self.kubectl().run("exec", "web", "--", "sh", "-c", "echo soak", timeout=60)
        return result.returncode == 0 and b"soak" in result.stdout

    def port_forward_session(self, echo_port: int, local_port: int) -> bool:
        forward = self.kubectl().popen("port-forward", "pod/web", f"{local_port}:{echo_port}")
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    conn = socket.create_connection(("127.0.0.1", local_port), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or forward.poll() is not None:
                        return False
                    time.sleep(0.1)
            with conn:
                message = os.urandom(64 * 1024)
                conn.sendall(message)
                received = b""
                while len(received) < len(message) and (data := conn.recv(65536)):
                    received += data
                return received == message
        finally:
            forward.terminate()
            forward.communicate(timeout=10)

    def one_request(self, token: str) -> int:
        request = urllib.request.Request(
            f"{self.proxy.url}/api/v1/namespaces/{NAMESPACE}/pods/web", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def bad_token(self) -> bool:
        forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
        return self.one_request(random.choice([secrets.token_urlsafe(40), forged])) == 401

    def reconnecting(self) -> bool:
        return self.one_request(self.token) == 200  # urllib opens a new connection each time


def echo_server(stop: threading.Event) -> int:
    """A TCP echo server: the 'pod port' the fakelet forwards to."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


# -- the verdict -----------------------------------------------------------------------------------------------


def slope_per_10_minutes(times: list[float], values: list[float]) -> float:
    n = len(times)
    mean_t, mean_v = sum(times) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in times)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / var * 600


def plot(rows: list[dict[str, float]], warmup: float, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    series = [("rss_mb", "resident memory (MB)"), ("fds", "open file descriptors"), ("tasks", "event-loop tasks"),
              ("upstream_connections", "connections to kube-apiserver")]  # fmt: skip
    figure, axes = plt.subplots(len(series), 1, figsize=(9, 10), sharex=True)
    minutes = [row["seconds"] / 60 for row in rows]
    for axis, (key, label) in zip(axes, series, strict=True):
        axis.plot(minutes, [row[key] for row in rows], linewidth=1)
        axis.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
        axis.set_ylabel(label)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (dotted: end of warm-up)")
    figure.suptitle("kube-oidc-proxy soak: mixed traffic through the proxy")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", default="bench/results", help="where the CSV and the PNG go")
    opts = parser.parse_args()
    duration = opts.minutes * 60
    warmup = max(duration / 5, min(120.0, duration / 2))
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="kop-soak-"))
    cluster = Cluster(workdir, build.ensure())
    proxy = Proxy(cluster)
    stop = threading.Event()
    try:
        say("starting the cluster, Keycloak and the proxy")
        cluster.start()
        metrics_port = proxy.ports.take()
        proxy.start(f"--metrics-bind-address=127.0.0.1:{metrics_port}", rotate_every=300)
        assert proxy.process is not None
        pid = proxy.process.popen.pid
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        traffic = Traffic(cluster, proxy, workdir, stop)
        echo_port = echo_server(stop)
        forward_port = proxy.ports.take()  # held: kubectl port-forward can still listen on it
        loops: list[tuple[str, float, Callable[[], bool]]] = [
            *((f"requests-{i}", 0.05, traffic.requests()) for i in range(4)),
            *((f"watch-{i}", 0.1, traffic.watches()) for i in range(8)),
            ("exec", 10.0, traffic.exec_session),
            ("port-forward", 20.0, lambda: traffic.port_forward_session(echo_port, forward_port)),
            ("bad-token", 0.2, traffic.bad_token),
            ("reconnect", 0.1, traffic.reconnecting),
        ]
        for kind, pause, step in loops:
            threading.Thread(target=traffic.loop, args=(kind.split("-")[0], pause, step), daemon=True).start()
        say(f"mixed traffic for {opts.minutes:g} minutes; sampling every {SAMPLE_EVERY_SECONDS:g} s")
        rows: list[dict[str, float]] = []
        started = time.monotonic()
        last_refresh = started
        while (elapsed := time.monotonic() - started) < duration:
            rows.append(
                {
                    "seconds": round(elapsed, 1),
                    "rss_mb": round(rss_mb(pid), 2),
                    "fds": len(os.listdir(f"/proc/{pid}/fd")),
                    "tasks": metric(metrics_url, "kube_oidc_proxy_asyncio_tasks"),
                    "upstream_connections": connections_to(pid, cluster.api_port),
                }
            )
            if len(rows) % 12 == 0:
                row = rows[-1]
                done = sum(traffic.tally.ok.values())
                say(f"{elapsed / 60:5.1f} min: RSS {row['rss_mb']:.1f} MB, {row['fds']:.0f} fds, "
                    f"{row['tasks']:.0f} tasks, {row['upstream_connections']:.0f} upstream; {done} steps ok, "
                    f"{sum(traffic.tally.failed.values())} failed")  # fmt: skip
            if time.monotonic() - last_refresh > TOKEN_REFRESH_SECONDS:
                traffic.refresh_token()
                last_refresh = time.monotonic()
            time.sleep(SAMPLE_EVERY_SECONDS)
        stop.set()
    finally:
        stop.set()
        proxy.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path, png_path = out / f"soak-{stamp}.csv", out / f"soak-{stamp}.png"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, warmup, png_path)
    after = [row for row in rows if row["seconds"] >= warmup]
    print(f"\nsoak: {opts.minutes:g} minutes, {len(rows)} samples ({csv_path}, {png_path})")
    print(f"traffic: ok {dict(traffic.tally.ok)}, failed {dict(traffic.tally.failed)}")
    for failure in traffic.tally.failures:
        print(f"  failed at {failure}")
    passed = True
    for key, bound in BOUNDS_PER_10_MINUTES.items():
        slope = slope_per_10_minutes([r["seconds"] for r in after], [r[key] for r in after])
        first, last = after[0][key], after[-1][key]
        verdict = "ok" if slope < bound else "GROWS"
        passed &= slope < bound
        print(f"  {key:22s} {first:9.1f} -> {last:9.1f}   slope {slope:+8.3f} per 10 min (bound {bound:g})  {verdict}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
