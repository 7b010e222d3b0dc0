"""Latency of requests through a running proxy before and during an audit log rotation with compression.

    .venv/bin/python bench/audit_rotation.py                 # a 100 MB audit log, ~1 minute
    .venv/bin/python bench/audit_rotation.py --size-mb 20    # quicker

Setup as bench/run.py: the Go upstream (bench/upstream) stands in for kube-apiserver, the proxy is the
real command with one worker pinned to core 1, the load generator and upstream to core 0. Audit: Metadata
level to a file in blocking mode (the default: a request waits until its events are written), with
``--audit-log-maxsize=<size> --audit-log-compress``.

For each variant the audit log is first filled to just under the size limit with event lines like the
proxy's own, so that it rotates about ``--before`` seconds into an open-loop run of ``--rate`` requests/s
(bench/loadgen -mode timeline: every request's latency, measured from its scheduled send time). The
rotation's start is the time in the backup's name (the rename), its end the compressed file's mtime.
p99 is taken over the requests scheduled in the ``--before`` seconds before the rename ("before") and
from the rename until the compressed file was complete ("during").

  background   this code: rename on the event loop, gzip and pruning in the background thread
  inline       the code as it was (bench/inline_rotation.py): the gzip (level 9) inside the write that
               rotates, on the event loop
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402

from bench.run import PIN_LOAD, build, proxy_flags, say, start_proxy, start_upstream  # noqa: E402

MIB = 1024 * 1024
PATH = "/api/v1/namespaces/default/pods/bench"
POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n"
BACKUP_TIME = re.compile(r"-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})\.log\.gz$")
VARIANTS = {"background": ("-m", "kube_oidc_proxy"), "inline": (str(ROOT / "bench" / "inline_rotation.py"),)}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int((len(ordered) - 1) * p)] if ordered else float("nan")


def timeline(loadgen: Path, url: str, ca: str, token: str, rate: int, seconds: float, warmup: float) -> Any:
    cmd = [*PIN_LOAD, str(loadgen), "-mode", "timeline", "-url", url, "-ca", ca, "-token", token]
    cmd += ["-rate", str(rate), "-duration", f"{seconds}s", "-warmup", f"{warmup}s"]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def stop(proxy: subprocess.Popen[Any]) -> None:
    proxy.send_signal(signal.SIGTERM)
    try:
        proxy.wait(120)  # closing waits for a compression under way
    except subprocess.TimeoutExpired:
        proxy.kill()


def calibrate(flags: list[str], work: Path, loadgen: Path, ca: str, token: str, rate: int) -> tuple[float, str]:
    """Bytes of audit log per request at this rate, and one real event line to copy."""
    log = work / "calibrate.log"
    proxy, port = start_proxy([*flags, f"--audit-log-path={log}"], work / "calibrate.err")
    try:
        run = timeline(loadgen, f"https://localhost:{port}{PATH}", ca, token, rate, 2, 0)
    finally:
        stop(proxy)
    requests = len(run["samples"]) + run["errors"]
    return log.stat().st_size / requests, log.read_text().splitlines()[-1]


def prefill(path: Path, size: int, template: str) -> None:
    """``size`` bytes of event lines like ``template``, varied as a real log varies (audit IDs, users,
    namespaces, object names, timestamps), so that gzip works as hard as on a real one."""
    event = json.loads(template)
    users = [f"user-{i}@example.com" for i in range(200)]
    namespaces = [f"team-{i}" for i in range(40)]
    resources = ["pods", "configmaps", "deployments", "services", "secrets", "events"]
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    lines: list[str] = []
    written = 0
    with path.open("w") as out:
        while written < size:
            moment += datetime.timedelta(microseconds=random.randrange(100, 20_000))
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            resource = random.choice(resources)
            event.update(
                auditID=str(uuid.uuid4()),
                requestURI=f"/api/v1/namespaces/{random.choice(namespaces)}/{resource}/{uuid.uuid4().hex[:10]}",
                user={**event["user"], "username": random.choice(users)},
                requestReceivedTimestamp=stamp,
                stageTimestamp=stamp,
            )
            line = json.dumps(event, separators=(",", ":")) + "\n"
            if written + len(line) > size:
                line = " " * (size - written - 1) + "\n"
            lines.append(line)
            written += len(line)
            if len(lines) == 4096:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


def measure(
    variant: str,
    flags: list[str],
    work: Path,
    loadgen: Path,
    ca: str,
    token: str,
    opts: argparse.Namespace,
    calibration: tuple[float, str],
) -> dict[str, Any]:
    directory = work / variant
    directory.mkdir()
    log = directory / "audit.log"
    bytes_per_request, template = calibration
    prefill(log, int(opts.size_mb * MIB - bytes_per_request * opts.rate * (opts.warmup + opts.before)), template)
    proxy, port = start_proxy(
        [*flags, f"--audit-log-path={log}", f"--audit-log-maxsize={opts.size_mb}", "--audit-log-compress"],
        directory / "proxy.err",
        VARIANTS[variant],
    )
    say(f"{variant}: {opts.rate} requests/s for {opts.seconds} s; the log rotates about {opts.before} s in")
    try:
        run = timeline(loadgen, f"https://localhost:{port}{PATH}", ca, token, opts.rate, opts.seconds, opts.warmup)
    finally:
        stop(proxy)
    (backup,) = [p for p in directory.iterdir() if BACKUP_TIME.search(p.name)]
    stamp = BACKUP_TIME.search(backup.name)
    assert stamp is not None
    renamed = datetime.datetime.strptime(stamp.group(1), "%Y-%m-%dT%H-%M-%S.%f").replace(tzinfo=datetime.UTC)
    start, end = renamed.timestamp(), backup.stat().st_mtime
    samples = [(at / 1e6, took / 1000) for at, took in run["samples"]]
    before = [ms for at, ms in samples if start - opts.before <= at < start]
    during = [ms for at, ms in samples if start <= at <= end]
    assert end < samples[-1][0], "the compression outlasted the run: raise --seconds"
    return {
        "rotation_seconds": end - start,
        "before": {"count": len(before), "p50_ms": statistics.median(before), "p99_ms": percentile(before, 0.99)},
        "during": {
            "count": len(during),
            "p50_ms": statistics.median(during),
            "p99_ms": percentile(during, 0.99),
            "max_ms": max(during),
        },
        "errors": run["errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100, help="--audit-log-maxsize, and the file compressed")
    parser.add_argument("--rate", type=int, default=200, help="requests per second")
    parser.add_argument("--before", type=float, default=4.0, help="seconds of load before the rotation")
    parser.add_argument("--seconds", type=float, default=16.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=2.0)
    opts = parser.parse_args()
    for tool in ("go", "taskset"):
        if shutil.which(tool) is None:
            say(f"{tool} is needed (Debian: apt-get install golang util-linux)")
            return 2
    upstream_bin, loadgen = build("upstream"), build("loadgen")
    work = Path(tempfile.mkdtemp(prefix="kop-bench-rotation-"))
    certs = issue(trustme.CA(), work, "bench")
    issuer = TestIssuer(certs)
    up, up_port = start_upstream(upstream_bin, certs)
    results: dict[str, Any] = {"size_mb": opts.size_mb, "rate": opts.rate}
    try:
        (work / "policy.yaml").write_text(POLICY)
        flags = [*proxy_flags(issuer, certs, up_port), f"--audit-policy-file={work / 'policy.yaml'}"]
        token = issuer.token()
        calibration = calibrate(flags, work, loadgen, certs.ca, token, opts.rate)
        say(f"{calibration[0]:.0f} bytes of audit log per request; filling {opts.size_mb} MB logs")
        for variant in VARIANTS:
            results[variant] = measure(variant, flags, work, loadgen, certs.ca, token, opts, calibration)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "audit_rotation.json").write_text(json.dumps(results, indent=2))
    return 0


def report(results: dict[str, Any]) -> None:
    print(f"\n  {results['size_mb']} MB audit log, {results['rate']} requests/s, blocking mode")
    print(f"  {'variant':<12}{'rotation':>10}{'p99 before':>12}{'p99 during':>12}{'max during':>12}  ratio")
    for variant in VARIANTS:
        r = results[variant]
        ratio = r["during"]["p99_ms"] / r["before"]["p99_ms"]
        print(
            f"  {variant:<12}{r['rotation_seconds']:>9.2f}s{r['before']['p99_ms']:>10.2f}ms"
            f"{r['during']['p99_ms']:>10.2f}ms{r['during']['max_ms']:>10.2f}ms  {ratio:.1f}x"
            f"   ({r['before']['count']} / {r['during']['count']} requests, {r['errors']} errors)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
