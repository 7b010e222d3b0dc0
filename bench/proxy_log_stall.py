"""The whole proxy under load while its stdout stalls: its memory, against the same load with stdout read.

The real command (one worker, pinned to core 1) in front of the Go upstream (bench/upstream), loaded with
wrk (32 connections) for N seconds, twice, one after the other: with its stdout read as fast as it comes
(the baseline), and with stdout a pipe nobody reads (a log agent that stopped). Resident memory is sampled
every two seconds. With the stall, access lines fill the bounded queue (100,000 lines) and the rest are
dropped and counted; memory must level off there instead of growing with every request. At the end the
stalled pipe is read, to show the line that reports the drop.

    .venv/bin/python bench/proxy_log_stall.py                 # 30 s each
    .venv/bin/python bench/proxy_log_stall.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402

from bench.run import PIN_LOAD, build, proxy_flags, rss_mb, say, start_proxy, start_upstream  # noqa: E402

SAMPLE_EVERY = 2


def drain(stream: IO[bytes], lines: list[int]) -> None:
    for _ in stream:
        lines[0] += 1


def load(proxy: subprocess.Popen[bytes], url: str, token: str, seconds: int) -> list[float]:
    wrk = subprocess.Popen(
        [*PIN_LOAD, "wrk", "-t1", "-c32", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[float] = []
    started = time.monotonic()
    while wrk.poll() is None:
        time.sleep(max(0.0, SAMPLE_EVERY * (len(samples) + 1) - (time.monotonic() - started)))
        if wrk.poll() is None:
            samples.append(rss_mb(proxy.pid))
    out = wrk.communicate()[0]
    rps = next((line.split()[-1] for line in out.splitlines() if line.startswith("Requests/sec")), "?")
    say(f"  {rps} requests/s")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30)
    options = parser.parse_args()
    upstream_bin = build("upstream")
    with tempfile.TemporaryDirectory(prefix="kop-bench-") as tmp:
        certs = issue(trustme.CA(), Path(tmp), "bench")
        issuer = TestIssuer(certs)
        upstream, upstream_port = start_upstream(upstream_bin, certs)
        procs: list[subprocess.Popen[Any]] = [upstream]
        try:
            flags = proxy_flags(issuer, certs, upstream_port)
            token = issuer.token()
            results: dict[str, list[float]] = {}
            for variant in ("stdout read", "stdout stalled"):
                proxy, port = start_proxy(flags, subprocess.DEVNULL, stdout=subprocess.PIPE)
                procs.append(proxy)
                assert proxy.stdout is not None
                read = [0]
                if variant == "stdout read":
                    threading.Thread(target=drain, args=(proxy.stdout, read), daemon=True).start()
                say(f"{variant}: wrk -t1 -c32 -d{options.seconds}s, RSS every {SAMPLE_EVERY} s")
                results[variant] = load(proxy, f"https://localhost:{port}/api/v1/pods", token, options.seconds)
                if variant == "stdout stalled":
                    os.set_blocking(proxy.stdout.fileno(), False)
                    tail = b""
                    deadline = time.monotonic() + 10
                    while b"dropped" not in tail and time.monotonic() < deadline:  # the writer resumes once read
                        tail = (tail + (proxy.stdout.read(1 << 20) or b""))[-(1 << 22) :]
                        time.sleep(0.05)
                    dropped = [line for line in tail.decode(errors="replace").splitlines() if "dropped" in line]
                    say(f"  once read again: {dropped[0] if dropped else 'no dropped-lines line'}")
                proxy.terminate()
                proxy.wait()
            base, stalled = results["stdout read"], results["stdout stalled"]
            say("    s   stdout read   stdout stalled (ratio)")
            for index, (a, b) in enumerate(zip(base, stalled, strict=False)):
                say(f"{SAMPLE_EVERY * (index + 1):5d}  {a:10.1f} MB  {b:10.1f} MB ({b / a:4.2f})")
            half = stalled[len(stalled) // 2 :]
            growth = (half[-1] - half[0]) / (SAMPLE_EVERY * max(1, len(half) - 1))
            say(f"stalled, growth over the second half: {growth:+.2f} MB/s")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            issuer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
