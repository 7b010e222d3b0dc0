"""What counting tunnel bytes as they flow costs: the count the event loop does every 2 s and at each scrape
(``ProxyServer.count_tunnel_bytes``) for N open tunnels, in one process and in --workers' multiprocess mode,
against what a counter increment per chunk would cost on the hot path.

Per chunk the tunnel only adds to an integer (as it did when bytes were counted at close); the count sums
what every open tunnel moved since the last one and increments the counter once per direction.

    .venv/bin/python bench/tunnel_count.py
    .venv/bin/python bench/tunnel_count.py --tunnels 100,1000,10000 --rounds 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 16_384  # bytes a tunnel's data_received typically gets


def _measure(tunnel_counts: list[int], rounds: int) -> None:
    from kube_oidc_proxy.observe.metrics import Metrics, multiprocess_dir  # noqa: PLC0415 - after the env is set
    from kube_oidc_proxy.server.proxy import ProxyServer  # noqa: PLC0415
    from kube_oidc_proxy.server.tunnel import Tunnel  # noqa: PLC0415

    mode = "workers" if multiprocess_dir() else "one process"
    metrics = Metrics()

    def tunnel() -> Tunnel:
        made = object.__new__(Tunnel)  # only its counts: no sockets needed
        made.bytes_up = made.bytes_down = made.counted_up = made.counted_down = 0
        return made

    for count in tunnel_counts:
        server = object.__new__(ProxyServer)
        server.metrics, server.tunnels = metrics, {tunnel() for _ in range(count)}
        busy, idle = [], []
        for _ in range(rounds):
            for each in server.tunnels:
                each.bytes_up += CHUNK
                each.bytes_down += 4 * CHUNK
            started = time.perf_counter()
            server.count_tunnel_bytes()
            busy.append(time.perf_counter() - started)
            started = time.perf_counter()
            server.count_tunnel_bytes()
            idle.append(time.perf_counter() - started)
        print(
            f"{mode:12} {count:>6} open tunnels: a count takes {statistics.median(busy) * 1e3:7.3f} ms when every "
            f"tunnel moved bytes, {statistics.median(idle) * 1e3:7.3f} ms when none did"
        )
    child = metrics.tunnel_bytes.labels("up")
    started = time.perf_counter()
    for _ in range(100_000):
        child.inc(CHUNK)
    per_inc = (time.perf_counter() - started) / 100_000
    one = tunnel()
    started = time.perf_counter()
    for _ in range(1_000_000):
        one.bytes_up += CHUNK
    per_add = (time.perf_counter() - started) / 1_000_000
    print(
        f"{mode:12} per chunk: the tunnel's own count {per_add * 1e9:.0f} ns; "
        f"a counter increment {per_inc * 1e9:.0f} ns"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunnels", default="100,1000,10000", help="open tunnels, comma-separated")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(n) for n in args.tunnels.split(",")]
    if args.child:
        _measure(counts, args.rounds)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, __file__, "--child", f"--tunnels={args.tunnels}", f"--rounds={args.rounds}"]
    subprocess.run(command, env=env, check=True)
    with tempfile.TemporaryDirectory() as shared:  # prometheus-client picks its storage at import: a fresh process
        subprocess.run(command, env={**env, "PROMETHEUS_MULTIPROC_DIR": shared}, check=True)


if __name__ == "__main__":
    main()
