"""The overload curve: offered load past what the proxy can serve, against goodput and latency, with the
in-flight limits at their defaults and turned off, measured in the same run.

    .venv/bin/python bench/overload.py [--seconds 10] [--max-conns 1000]

Setup as bench/run.py (the Go stand-in for kube-apiserver, the proxy pinned to its own core, TLS both
sides). First the proxy's capacity: wrk with 32 connections, closed loop. Then, for offered loads from half
of it to three times it, bench/loadgen sends GETs open loop (each at its scheduled time, whatever the
answers) over at most --max-conns connections, a population of clients, to each proxy in turn, after 3 s
at the same load, not measured, that opens the connections it needs:

  goodput   200s per second over the run (drain included)
  ok p50/p99  latency of the 200s, from each request's scheduled send time (client-side waiting included)
  shed      429s per second and their p99: what a client-go client would retry after Retry-After
  errors    other answers, or none within 30 s
  RSS, fds  the proxy's peak during the step (sampled every 0.2 s)

Results also go to bench/results/overload.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.certs import issue
from tests.support.issuer import TestIssuer

from bench.run import PIN_LOAD, build, proxy_flags, rss_mb, say, start_proxy, start_upstream, stop_all, wrk

FACTORS = (0.5, 0.9, 1.2, 1.5, 2.0, 3.0)
PATH = "/api/v1/namespaces/default/pods/bench"


class PeakSampler:
    """The proxy's peak resident memory and open file descriptors while a step runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_mb = 0.0
        self.fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.rss_mb = max(self.rss_mb, rss_mb(self.pid))
            self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            if self._stop.wait(0.2):
                return


def step(
    loadgen: Path, pid: int, port: int, ca: str, token: str, rate: int, seconds: int, conns: int
) -> dict[str, Any]:
    cmd = [*PIN_LOAD, str(loadgen), "-mode", "overload", "-url", f"https://localhost:{port}{PATH}", "-ca", ca]
    cmd += ["-token", token, "-rate", str(rate), "-duration", f"{seconds}s", "-warmup", "3s", "-max-conns", str(conns)]
    with PeakSampler(pid) as peak:
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    elapsed = out["seconds"]
    return {
        "offered_rps": out["offered_rps"],
        "goodput_rps": out["ok"]["count"] / elapsed,
        "ok_p50_ms": out["ok"]["p50_us"] / 1000,
        "ok_p99_ms": out["ok"]["p99_us"] / 1000,
        "shed_rps": out["shed"]["count"] / elapsed,
        "shed_p99_ms": out["shed"]["p99_us"] / 1000,
        "errors": out["errors"],
        "peak_rss_mb": peak.rss_mb,
        "peak_fds": peak.fds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each step (default 10)")
    parser.add_argument("--max-conns", type=int, default=1000, help="client connections at most (default 1000)")
    opts = parser.parse_args()
    for tool in ("wrk", "go", "taskset"):
        if shutil.which(tool) is None:
            say(f"{tool} is needed (Debian: apt-get install wrk golang util-linux)")
            return 2
    upstream_bin, loadgen_bin = build("upstream"), build("loadgen")
    work = Path(tempfile.mkdtemp(prefix="kop-overload-"))
    certs = issue(trustme.CA(), work, "bench")
    issuer = TestIssuer(certs)
    procs: list[subprocess.Popen[Any]] = []
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        up, up_port = start_upstream(upstream_bin, certs)
        procs.append(up)
        flags = proxy_flags(issuer, certs, up_port)
        variants = {
            "limits at their defaults (400 reads, 200 writes)": start_proxy(flags, work / "limited.err"),
            "no limits": start_proxy(
                [*flags, "--max-requests-inflight=0", "--max-mutating-requests-inflight=0"], work / "unlimited.err"
            ),
        }
        procs.extend(p for p, _ in variants.values())
        token = issuer.token()
        first_port = next(port for _, port in variants.values())
        say("capacity: wrk -t1 -c32 -d5s, closed loop")
        capacity = wrk(f"https://localhost:{first_port}{PATH}", token, 5, 32)["rps"]
        results["capacity_rps"] = capacity
        say(f"capacity {capacity:.0f} requests/s; offered loads {', '.join(f'{f:g}x' for f in FACTORS)}")
        curves: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for factor in FACTORS:
            rate = int(capacity * factor)
            for name, (proc, port) in variants.items():
                say(f"{factor:g}x ({rate}/s), {name}: loadgen -mode overload -rate {rate} -duration {opts.seconds}s "
                    f"-warmup 3s -max-conns {opts.max_conns}")  # fmt: skip
                row = step(loadgen_bin, proc.pid, port, certs.ca, token, rate, opts.seconds, opts.max_conns)
                curves[name].append({"factor": factor, **row})
                time.sleep(1)  # let the connections of the step close before the next
        results["curves"] = curves
    finally:
        stop_all(procs)
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)

    report(results, opts.max_conns)
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "overload.json").write_text(json.dumps(results, indent=2))
    return 0


def report(results: dict[str, Any], conns: int) -> None:
    print(f"\ncapacity (wrk -c32, closed loop): {results['capacity_rps']:.0f} requests/s")
    print(f"open loop, at most {conns} client connections; latency from each request's scheduled time\n")
    for name, rows in results["curves"].items():
        print(name)
        print("| offered | offered/s | goodput/s | ok p50 | ok p99 | shed 429/s | shed p99 | errors | peak RSS |"
              " peak fds |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['factor']:g}x | {r['offered_rps']:.0f} | {r['goodput_rps']:.0f} | {r['ok_p50_ms']:.1f} ms | "
                f"{r['ok_p99_ms']:.1f} ms | {r['shed_rps']:.0f} | {r['shed_p99_ms']:.1f} ms | {r['errors']} | "
                f"{r['peak_rss_mb']:.0f} MB | {r['peak_fds']} |"
            )
        print()


if __name__ == "__main__":
    sys.exit(main())
