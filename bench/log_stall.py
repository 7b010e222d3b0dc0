"""Memory of a process writing access lines while its stdout is stalled, against the same with stdout read.

Three producer processes write the same SIEM access line (a typical AuSuccess) at the same rate for N
seconds, through the proxy's own AccessLog:

  drained     stdout is read as fast as it comes: the baseline
  stalled     stdout is a pipe nobody reads (a log agent that stopped): the queue fills to its bound,
              then lines are dropped and counted
  unbounded   the same stall with the bound lifted, which is what a stalled stdout did before the bound

Their resident memory is sampled every second and printed with its ratio to the drained process at the
same moment; the growth over the second half of the run shows which one is flat.

    .venv/bin/python bench/log_stall.py                          # 12 s at 20,000 lines/s
    .venv/bin/python bench/log_stall.py --seconds 30 --rate 50000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("drained", "stalled", "unbounded")
BATCH = 200  # lines written back to back, then the producer sleeps until the next batch is due


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# Not imported from bench.run: its imports (trustme, the test support) would weigh on the measured children.
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def produce(rate: int, seconds: float, limit: int) -> None:
    """The child: access lines on stdout at ``rate`` per second; a summary on stderr at the end."""
    from kube_oidc_proxy.authn.model import UserInfo  # noqa: PLC0415 - the parent does not need them
    from kube_oidc_proxy.observe.accesslog import AccessLog  # noqa: PLC0415

    log = AccessLog(limit=limit or sys.maxsize)
    user = UserInfo(
        "alice@example.com",
        groups=("oidc:developers", "oidc:ops"),
        extra={"authentication.kubernetes.io/credential-id": ("JTI=4f2c1e0d-9a3b-4c1f-8e2d-7b6a5c4d3e2f",)},
    )
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    produced, started = 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(BATCH):
            log.success("10.42.0.5", [b"10.42.1.3"], f"/api/v1/namespaces/dev/pods/web-{produced}".encode(), user)
            produced += 1
        time.sleep(max(0.0, produced / rate - elapsed))
    summary = {"produced": produced, "dropped": log.queue.dropped, "queued": log.queue.queued}
    sys.stderr.write(json.dumps(summary) + "\n")
    sys.stderr.flush()
    os._exit(0)  # the writer thread of a stalled stdout is stuck in write(): do not wait for it


def start(variant: str, rate: int, seconds: float) -> tuple[subprocess.Popen[bytes], threading.Thread | None]:
    args = [sys.executable, __file__, "--produce", "--rate", str(rate), "--seconds", str(seconds)]
    if variant == "unbounded":
        args += ["--limit", "0"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert child.stdout is not None and child.stderr is not None
    assert child.stderr.readline() == b"ready\n"
    reader = None
    if variant == "drained":
        reader = threading.Thread(target=drain, args=(child.stdout,), daemon=True)
        reader.start()
    return child, reader


def drain(stream: IO[bytes]) -> None:
    while stream.read(1 << 16):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rate", type=int, default=20_000, help="access lines per second")
    parser.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=-1, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.produce:
        from kube_oidc_proxy.observe.accesslog import ACCESS_LOG_QUEUE_LIMIT  # noqa: PLC0415

        produce(options.rate, options.seconds, ACCESS_LOG_QUEUE_LIMIT if options.limit < 0 else options.limit)
        return 0

    command = f".venv/bin/python bench/log_stall.py --seconds {options.seconds:g} --rate {options.rate}"
    say(f"{command}: {options.rate:,} access lines/s for {options.seconds:g} s, RSS in MB (ratio to drained)")
    children = {variant: start(variant, options.rate, options.seconds) for variant in VARIANTS}
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    say("    t  " + "".join(f"{variant:>18}" for variant in VARIANTS))
    while all(child.poll() is None for child, _ in children.values()):
        time.sleep(max(0.0, len(samples) + 1 - (time.monotonic() - started)))
        try:
            sample = {variant: rss_mb(child.pid) for variant, (child, _) in children.items()}
        except FileNotFoundError:
            break
        if not all(sample.values()):
            break  # one has exited
        samples.append(sample)
        base = sample["drained"]
        say(f"{len(samples):5d}  " + "".join(f"{sample[v]:10.1f} ({sample[v] / base:4.2f})" for v in VARIANTS))
    summaries: dict[str, dict[str, Any]] = {}
    for variant, (child, _) in children.items():
        assert child.stderr is not None
        summaries[variant] = json.loads(child.stderr.read().decode().strip().splitlines()[-1])
        child.wait()
    half = samples[len(samples) // 2 :]
    for variant in VARIANTS:
        growth = (half[-1][variant] - half[0][variant]) / max(1, len(half) - 1)
        summary = summaries[variant]
        say(
            f"{variant:>9}: peak {max(s[variant] for s in samples):6.1f} MB, second half {growth:+5.2f} MB/s; "
            f"{summary['produced']:,} lines, {summary['dropped']:,} dropped and counted, "
            f"{summary['queued']:,} queued at the end"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
