"""What auditing costs the proxy in CPU instructions per request, counted by valgrind (callgrind), which a
busy machine does not disturb the way it disturbs requests/s and CPU time.

Each variant runs as the real command under ``valgrind --tool=callgrind`` with instrumentation off; four
keep-alive connections send 50 requests each to warm up, then it is switched on for ``--requests``
more on the same connections (no TLS handshake is counted) and off again, and the instructions the proxy
executed are divided by the requests. Kernel work (the
``write()`` of an audit line, TLS in the kernel: none here) is not counted: compare CPU time for that.

    .venv/bin/python bench/audit_instructions.py                       # plain, audit blocking, audit batch
    .venv/bin/python bench/audit_instructions.py --compare-src DIR     # and audit (blocking) as DIR's code does it
    .venv/bin/python bench/audit_instructions.py --plain --compare-src DIR [--compare-src DIR2]
                                    # the plain proxy only: this code, and as DIR's (DIR2's) code does it
    .venv/bin/python bench/audit_instructions.py --plain --h2  # and HTTP/2 vs HTTP/1.1 requests from h2load

Needs valgrind and Go (the upstream of bench/run.py).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402

from bench.run import PORTS, build, chart_policy, proxy_flags, say, start_upstream  # noqa: E402

PATH = "/api/v1/namespaces/default/pods/bench"


CONNECTIONS = 4


def client_phases(port: int, ca: str, token: str, phases: list[int], between: Callable[[int], None]) -> None:
    """``CONNECTIONS`` keep-alive connections send the requests of each phase, all done before ``between``."""
    context = ssl.create_default_context(cafile=ca)
    conns = [http.client.HTTPSConnection("localhost", port, context=context, timeout=600) for _ in range(CONNECTIONS)]
    headers = {"Authorization": f"Bearer {token}"}

    def send(conn: http.client.HTTPSConnection, count: int) -> None:
        for _ in range(count):
            conn.request("GET", PATH, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status

    for index, total in enumerate(phases):
        threads = [threading.Thread(target=send, args=(c, total // CONNECTIONS)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        between(index)
    for conn in conns:
        conn.close()


def h2load_phases(port: int, token: str, phases: list[int], between: Callable[[int], None], h2load: list[str]) -> None:
    """h2load with these options (``-c1 -m32``: HTTP/2; ``--h1 -c4 -m1``: HTTP/1.1), a run per phase. Each run
    opens its connections anew: their TLS handshakes are counted (a few million instructions each)."""
    url = f"https://localhost:{port}{PATH}"
    for index, total in enumerate(phases):
        cmd = ["h2load", *h2load, "-t1", "-n", str(total), "-H", f"Authorization: Bearer {token}", url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        assert f"{total} succeeded" in out and f"status codes: {total} 2xx" in out, out
        between(index)


def counted(
    flags: list[str],
    src: Path,
    work: Path,
    name: str,
    token: str,
    ca: str,
    count: int,
    h2load: list[str] | None = None,
) -> float:
    """Instructions per request of one proxy (its flags, the package from ``src``), and the requests counted;
    with ``h2load``, its options, the requests are h2load's (``h2load_phases``)."""
    port, probe = PORTS.take(), PORTS.take()
    out = work / f"callgrind.{name}"
    cmd = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "kube_oidc_proxy", *flags, f"--secure-port={port}", f"--readiness-probe-port={probe}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    proxy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.err", "wb"), env=env)  # noqa: SIM115
    try:
        deadline = time.monotonic() + 300  # Python under valgrind starts slowly
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{probe}/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)

        def toggle(phase: int) -> None:
            switch = "on" if phase == 0 else "off"  # after the warm-up, after the counted requests
            subprocess.run(["callgrind_control", "-i", switch, str(proxy.pid)], check=True, capture_output=True)

        if h2load is None:
            client_phases(port, ca, token, [50 * CONNECTIONS, count], toggle)
        else:
            h2load_phases(port, token, [50 * CONNECTIONS, count], toggle, h2load)
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(120)
    total = 0
    for dump in work.glob(f"callgrind.{name}*"):
        for line in dump.read_text(errors="replace").splitlines():
            if m := re.match(r"totals: (\d+)", line):
                total += int(m.group(1))
                break
    return total / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per variant")
    parser.add_argument(
        "--compare-src",
        type=Path,
        action="append",
        default=[],
        help="also audit (blocking), or with --plain the plain proxy, with the package from this src (repeatable)",
    )
    parser.add_argument("--plain", action="store_true", help="the plain proxy only (no audit variants)")
    parser.add_argument(
        "--h2",
        action="store_true",
        help="the plain proxy with h2load's requests: HTTP/2 (-c1 -m32) and HTTP/1.1 (--h1 -c4 -m1)",
    )
    opts = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "go"):
        if shutil.which(tool) is None:
            say(f"{tool} is needed (Debian: apt-get install valgrind golang)")
            return 2
    work = Path(tempfile.mkdtemp(prefix="kop-instr-"))
    certs = issue(trustme.CA(), work, "bench")
    issuer = TestIssuer(certs)
    up, up_port = start_upstream(build("upstream"), certs)
    try:
        base = proxy_flags(issuer, certs, up_port)
        policy = work / "audit-policy.yaml"
        policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
        audit = [f"--audit-policy-file={policy}"]
        chart = [f"--audit-policy-file={chart_policy(work)}"]
        src = ROOT / "src"
        variants = {"plain": (base, src)}
        if not opts.plain:
            variants["audit-blocking"] = ([*base, *audit, f"--audit-log-path={work / 'blocking.log'}"], src)
            variants["audit-chart"] = ([*base, *chart, f"--audit-log-path={work / 'chart.log'}"], src)
            batch = [*base, *audit, f"--audit-log-path={work / 'batch.log'}", "--audit-log-mode=batch"]
            variants["audit-batch"] = (batch, src)
        for i, other in enumerate(opts.compare_src):
            suffix = f"-{i + 1}" if len(opts.compare_src) > 1 else ""
            if opts.plain:
                variants[f"plain-compared{suffix}"] = (base, other)
            else:
                compared = [*base, *audit, f"--audit-log-path={work / f'compared{suffix}.log'}"]
                variants[f"audit-compared{suffix}"] = (compared, other)
        results = {}
        for name, (flags, package) in variants.items():
            say(f"{name}: the proxy under callgrind, {opts.requests} requests counted")
            # a token per variant: under valgrind the runs can outlive one (10 minutes)
            results[name] = counted(flags, package, work, name, issuer.token(), certs.ca, opts.requests)
        if opts.h2:
            for name, options in (("h2load-h1-c4", ["--h1", "-c4", "-m1"]), ("h2load-h2-c1-m32", ["-c1", "-m32"])):
                say(f"{name}: the plain proxy under callgrind, {opts.requests} requests of h2load {options} counted")
                results[name] = counted(base, src, work, name, issuer.token(), certs.ca, opts.requests, options)
        plain = results["plain"]
        print()
        for name, per_request in results.items():
            extra = f"+{per_request - plain:,.0f} ({per_request / plain:.2f}x)" if name != "plain" else ""
            print(f"  {name:<15} {per_request:>10,.0f} instructions/request  {extra}")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
        issuer.close()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
