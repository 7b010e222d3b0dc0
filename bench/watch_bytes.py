"""Where the memory of one idle watch goes: the proxy run with tracemalloc (bench/traced_proxy.py), a
snapshot with no watch open (after a warm-up that opened and closed some) and one with N idle watches, the
difference per watch grouped by file and line; beside it the same N watches on a proxy without tracemalloc,
whose RSS difference per watch is the total the table must explain.

    .venv/bin/python bench/watch_bytes.py [N] [--h2 [--conns 100]] [--lines 30]

Over HTTP/1.1 each watch is a client TLS connection of its own (loadgen -mode watches); with --h2 the
watches are streams over --conns connections (loadgen -mode h2watches). Either way the proxy multiplexes
them to kube-apiserver (the Go stand-in, bench/upstream) over HTTP/2. What tracemalloc does not see is
memory allocated outside Python's allocators: OpenSSL's per-connection state, uvloop's C structures,
glibc's and pymalloc's own overhead (bench/tls_floor.py measures the first two for an idle TLS connection).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402

from bench.run import build, proxy_flags, rss_mb, start_proxy, start_upstream, stop_all  # noqa: E402

WATCH_PATH = "/api/v1/namespaces/default/pods?watch=true"
# Allocations this large are buffers the kernel backs only where touched (uvloop's 256 KiB SSL buffer per
# connection): counted apart, not as resident bytes.
LARGE = 64 * 1024


def split(snap: tracemalloc.Snapshot) -> tuple[tracemalloc.Snapshot, int, int]:
    """The snapshot without its large allocations, and their count and bytes."""
    raw = snap.traces._traces  # type: ignore[attr-defined]  # (domain, size, traceback, nframe) tuples
    large = [t for t in raw if t[1] >= LARGE]
    small = tracemalloc.Snapshot([t for t in raw if t[1] < LARGE], snap.traceback_limit)
    return small, len(large), sum(t[1] for t in large)


def hold(loadgen: Path, ca: str, token: str, url: str, n: int, conns: int) -> subprocess.Popen[str]:
    mode = ["-mode", "h2watches", "-conns", str(conns)] if conns else ["-mode", "watches"]
    cmd = [str(loadgen), *mode, "-n", str(n), "-url", url, "-ca", ca, "-token", token]
    for _ in range(30):  # a proxy slow to start on a busy machine: none opened, try again
        holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None
        opened = json.loads(holder.stdout.readline())
        if opened["open"] or not opened["errors"]:
            break
        release(holder)
        time.sleep(1)
    assert opened["open"] == n and not opened["errors"], opened
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.close()
    holder.wait(60)


def snapshot(directory: Path, name: str) -> tuple[tracemalloc.Snapshot, dict[str, int]]:
    (directory / f"{name}.request").touch()
    while (directory / f"{name}.request").exists():
        time.sleep(0.1)
    totals = json.loads((directory / f"{name}.json").read_text())
    return tracemalloc.Snapshot.load(str(directory / f"{name}.snap")), totals


def where(filename: str) -> str:
    """A short name for the file an allocation was made in."""
    for marker in ("/kube_oidc_proxy/", "/site-packages/", "/lib/python3"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail if marker != "/kube_oidc_proxy/" else f"kube_oidc_proxy/{tail}"
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--h2", action="store_true", help="watches as HTTP/2 streams over --conns connections")
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--lines", type=int, default=30, help="lines of the table by file and line")
    opts = parser.parse_args()
    conns = opts.conns if opts.h2 else 0
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    upstream_bin, loadgen_bin = build("upstream"), build("loadgen")
    work = Path(tempfile.mkdtemp(prefix="kop-watch-bytes-"))
    certs = issue(trustme.CA(), work, "bench")
    issuer = TestIssuer(certs)
    procs: list[subprocess.Popen[Any]] = []
    try:
        up, up_port = start_upstream(upstream_bin, certs)
        procs.append(up)
        flags = proxy_flags(issuer, certs, up_port)
        token = issuer.token()
        traces = work / "traces"
        traces.mkdir()
        env = {**os.environ, "KOP_TRACE_DIR": str(traces)}
        traced, traced_port = start_proxy(flags, work / "traced.err", launcher=("bench/traced_proxy.py",), env=env)
        procs.append(traced)
        plain, plain_port = start_proxy(flags, work / "plain.err")
        procs.append(plain)

        rss: dict[str, float] = {}
        for port in (traced_port, plain_port):
            url = f"https://localhost:{port}{WATCH_PATH}"
            release(hold(loadgen_bin, certs.ca, token, url, min(200, opts.n), conns))  # lazy imports, caches
            time.sleep(2)
        rss["plain_before"] = rss_mb(plain.pid)
        zero, zero_totals = snapshot(traces, "zero")
        for name, port in (("traced", traced_port), ("plain", plain_port)):
            url = f"https://localhost:{port}{WATCH_PATH}"
            holder = hold(loadgen_bin, certs.ca, token, url, opts.n, conns)
            procs.append(holder)
            time.sleep(2)
            if name == "traced":
                held, held_totals = snapshot(traces, "held")
            else:
                rss["plain_after"] = rss_mb(plain.pid)
            release(holder)
    finally:
        stop_all(procs)
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)  # the snapshots are loaded by now

    n = opts.n
    kind = f"HTTP/2, {conns} connections" if conns else "HTTP/1.1, a connection each"
    held, held_large, held_large_bytes = split(held)
    zero, zero_large, zero_large_bytes = split(zero)
    total = (rss["plain_after"] - rss["plain_before"]) * 1024 * 1024 / n
    small = (sum(t.size for t in held.traces) - sum(t.size for t in zero.traces)) / n
    large = (held_large_bytes - zero_large_bytes) / n
    print(f"\n{n} idle watches ({kind}), bytes per watch:")
    print(f"  RSS, proxy without tracemalloc        {total:8.0f}")
    print(f"  traced, allocations < {LARGE // 1024} KiB          {small:8.0f}  (Python's objects, by file below)")
    print(f"  not traced or large (RSS - the above) {total - small:8.0f}  (OpenSSL, uvloop's C state, the touched")
    print("                                                  pages of large buffers, allocator overhead)")
    count = (held_large - zero_large) / n
    print(f"  traced, allocations >= {LARGE // 1024} KiB         {large:8.0f}  ({count:.2f} per watch; address "
          "space, resident only where touched)")  # fmt: skip
    malloc = (held_totals["malloc_in_use"] - zero_totals["malloc_in_use"]) / n
    print(f"  glibc malloc in use, traced proxy     {malloc:8.0f}  (large buffers included)")

    stats = held.compare_to(zero, "lineno")
    by_file: dict[str, float] = defaultdict(float)
    for stat in stats:
        by_file[where(stat.traceback[0].filename)] += stat.size_diff / n
    print("\nby file (bytes per watch):")
    for name, size in sorted(by_file.items(), key=lambda kv: -kv[1]):
        if abs(size) >= 8:
            print(f"  {size:8.0f}  {name}")
    print(f"\nby line, the first {opts.lines} (bytes and allocations per watch):")
    for stat in stats[: opts.lines]:
        frame = stat.traceback[0]
        line = f"{where(frame.filename)}:{frame.lineno}"
        print(f"  {stat.size_diff / n:8.0f}  {stat.count_diff / n:5.1f}  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
