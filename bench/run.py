"""Benchmarks of the proxy against the same upstream reached directly, measured in the same run.

    .venv/bin/python bench/run.py            # everything, ~2 minutes
    .venv/bin/python bench/run.py --quick    # shorter runs, 2,000 watches
    .venv/bin/python bench/run.py --only audit [--rounds 15]  # plain vs audit (blocking, batch) alone
    .venv/bin/python bench/run.py --only h2 [--rounds 9]      # HTTP/2 (h2load) vs HTTP/1.1 (wrk), taking turns
    .venv/bin/python bench/run.py --only http1 --compare-src DIR  # this code vs another version, HTTP/1.1
    .venv/bin/python bench/run.py --only watches [--watches N]    # idle watches over HTTP/1.1 and HTTP/2

Setup: a Go HTTPS upstream (bench/upstream) stands in for kube-apiserver; the proxy runs as the real
command with one worker, TLS on both sides, keep-alive everywhere. On a 2-core machine the proxy is
pinned to core 1 and the load generators and upstream to core 0, so they do not steal its CPU.

  throughput   wrk, 32 connections: requests/s and p50/p99, direct vs through the proxy, and the ratio
  latency      500 requests/s open loop (bench/loadgen): p50/p99 direct, through the proxy, and added
  new token    sequential requests each with a never-seen token vs one cached token: the median
               difference is what verifying a new token costs
  audit        the plain proxy, and one each with audit at Metadata level to a file (blocking, the default),
               metrics, JSON access lines, and all three, taking turns in 2 s wrk runs: median ratios to
               the plain proxy and CPU time per request
  watches      N idle watches held open through the proxy: the proxy's resident memory, over HTTP/1.1
               (a connection each) and over HTTP/2 (100 connections, the watches as their streams)
  h2           (--only h2) HTTP/1.1 with wrk -c32 and HTTP/2 with h2load (one connection with 32 streams,
               four with 8), through the same proxy and direct, taking turns in 2 s runs: requests/s,
               the ratio HTTP/2 / HTTP/1.1 and the proxy's CPU time per request

Every figure is printed with the command that produced it; results also go to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import CertFiles, issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402
from tests.support.ports import PortHolder  # noqa: E402

PORTS = PortHolder()  # every port of the run, held until the process exits: no two listeners share one
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kube-oidc-proxy" / "bench"
PIN_PROXY = ["taskset", "-c", "1"] if os.cpu_count() and os.cpu_count() >= 2 else []  # type: ignore[operator]
PIN_LOAD = ["taskset", "-c", "0"] if PIN_PROXY else []


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def build(tool: str) -> Path:
    """Build bench/<tool> (Go) once per source version, cached outside the repository."""
    source = ROOT / "bench" / tool
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(source.glob("*")))).hexdigest()[:12]
    binary = CACHE / f"{tool}-{digest}"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"building {tool} with go (once per version) ...")
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=source, check=True)
    say(f"built {tool} in {time.monotonic() - started:.1f}s")
    return binary


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    cmd = [
        *PIN_LOAD,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps, out
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def h2load(url: str, token: str, seconds: int, clients: int, streams: int) -> dict[str, float]:
    """h2load over TLS with ALPN h2, time-based: requests/s and requests done (h2load gives no percentiles
    of its own; ``mean_ms`` is its mean time for a request)."""
    cmd = [*PIN_LOAD, "h2load", f"-c{clients}", f"-m{streams}", f"-D{seconds}", "-t1"]
    cmd += ["-H", f"Authorization: Bearer {token}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    assert rps and done and codes and mean and "Application protocol: h2" in out, out
    return {
        "rps": float(rps.group(1)),
        "requests": float(done.group(1)),
        "mean_ms": float(mean.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)],
        "non_2xx": float(sum(int(n) for n in codes.groups())),
    }


def loadgen(binary: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run([*PIN_LOAD, str(binary), *args], capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def interleaved(
    proxies: dict[str, tuple[int, int]], path: str, token: str, seconds: int, rounds: int = 0
) -> dict[str, Any]:
    """Throughput of proxies that differ in one setting, as ratios to the first. This machine's speed drifts
    by tens of percent within a minute, so the variants take turns in short runs and medians are compared;
    CPU time per request (the proxy is CPU-bound) is reported beside them."""

    def run_wrk(port: int) -> Runner:
        return lambda: wrk(f"https://localhost:{port}{path}", token, 2, 32)

    return take_turns(
        {name: (pid, run_wrk(port)) for name, (pid, port) in proxies.items()}, rounds or max(3, seconds // 2)
    )


Runner = Callable[[], dict[str, float]]


def take_turns(variants: dict[str, tuple[int, Runner]], rounds: int) -> dict[str, Any]:
    """Each variant's 2 s load run (``Runner``: requests/s, and ``requests`` done if it reports them), in turn,
    ``rounds`` times: medians, ratios to the first variant, and the CPU time per request of the process
    ``pid`` (0: none, a direct baseline)."""
    rps: dict[str, list[float]] = {name: [] for name in variants}
    cpu_us: dict[str, list[float]] = {name: [] for name in variants}
    sys_us: dict[str, list[float]] = {name: [] for name in variants}
    errors: dict[str, float] = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, (pid, run) in variants.items():
            before = cpu_seconds(pid) if pid else 0.0  # taskset execs: same pid
            sys_before = cpu_seconds(pid, system_only=True) if pid else 0.0
            result = run()
            rps[name].append(result["rps"])
            errors[name] += result.get("non_2xx", 0.0)
            requests = result.get("requests", result["rps"] * 2)
            if pid and requests:  # none: the run failed (its errors are counted), no CPU per request
                cpu_us[name].append((cpu_seconds(pid) - before) / requests * 1e6)
                sys_us[name].append((cpu_seconds(pid, system_only=True) - sys_before) / requests * 1e6)
    base = statistics.median(rps[next(iter(variants))])
    return {
        name: {
            "rps": statistics.median(values),
            "ratio": statistics.median(values) / base,
            "cpu_us_per_request": statistics.median(cpu_us[name]) if cpu_us[name] else 0.0,
            "system_cpu_us_per_request": statistics.median(sys_us[name]) if sys_us[name] else 0.0,  # the kernel's
            "runs": values,
            "non_2xx": errors[name],
        }
        for name, values in rps.items()
    }


def cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def chart_policy(work: Path) -> Path:
    """The audit policy the Helm chart installs by default (Metadata level, no RequestReceived stage, no
    discovery requests), written to a file in ``work``."""
    values = yaml.safe_load((ROOT / "deploy" / "charts" / "kube-oidc-proxy" / "values.yaml").read_text())
    path = work / "chart-audit-policy.yaml"
    path.write_text(values["audit"]["policy"])
    return path


def start_upstream(binary: Path, certs: CertFiles) -> tuple[subprocess.Popen[str], int]:
    """The Go stand-in for kube-apiserver (bench/upstream), pinned with the load, and the port it serves."""
    up = subprocess.Popen(
        [*PIN_LOAD, str(binary), "-cert", certs.cert, "-key", certs.key], stdout=subprocess.PIPE, text=True
    )
    assert up.stdout is not None
    return up, int(up.stdout.readline())


def stop_all(procs: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM each process still running, the last started first; SIGKILL what is not gone in 30 s."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def proxy_flags(issuer: TestIssuer, certs: CertFiles, upstream_port: int) -> list[str]:
    """The flags every benchmarked proxy has: the test issuer, TLS, the upstream, a static token."""
    return [
        f"--oidc-issuer-url={issuer.url}", "--oidc-client-id=kube", f"--oidc-ca-file={certs.ca}",
        "--oidc-groups-claim=groups", "--bind-address=127.0.0.1", f"--tls-cert-file={certs.cert}",
        f"--tls-private-key-file={certs.key}", f"--server=https://127.0.0.1:{upstream_port}",
        f"--certificate-authority={certs.ca}", "--token=bench-sa-token",
    ]  # fmt: skip


def start_proxy(
    flags: list[str],
    stderr: Path | int,
    launcher: tuple[str, ...] = ("-m", "kube_oidc_proxy"),
    stdout: int = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[Any], int]:
    """The real command (or ``launcher``, a script that runs it), pinned to its core, ready to serve;
    access lines are discarded unless ``stdout`` says otherwise (``subprocess.PIPE``)."""
    port, probe = PORTS.take(), PORTS.take()
    cmd = [*PIN_PROXY, sys.executable, *launcher, *flags, f"--secure-port={port}"]
    cmd.append(f"--readiness-probe-port={probe}")
    say("starting the proxy: " + " ".join(cmd[len(PIN_PROXY) :]))
    err = open(stderr, "wb") if isinstance(stderr, Path) else stderr  # noqa: SIM115
    proxy = subprocess.Popen(cmd, stdout=stdout, stderr=err, env=env)
    deadline = time.monotonic() + 60  # a busy machine can take tens of seconds to start it
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{probe}/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        say("the proxy is not ready after 60 s; going on")
    return proxy, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs and 2,000 watches")
    parser.add_argument("--watches", type=int, default=None)
    parser.add_argument(
        "--only",
        choices=["audit", "h2", "http1", "watches"],
        help="audit: only the plain proxy and audit, taking turns; h2: HTTP/2 vs HTTP/1.1 throughput, taking "
        "turns; http1: this code vs --compare-src over HTTP/1.1, taking turns; watches: idle watches' memory",
    )
    parser.add_argument(
        "--rounds", type=int, default=0, help="with --only audit, h2 or http1: rounds of 2 s runs (default 10)"
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="with --only audit: also audit (blocking) with the package from this src directory (another "
        "version); with --only http1 (required): the plain proxy with that package; with --only watches: also "
        "the watches held by that package",
    )
    parser.add_argument(
        "--h2-connections", type=int, default=100, help="HTTP/2 connections the idle watches share (100)"
    )
    opts = parser.parse_args()
    seconds = 5 if opts.quick else 15
    n_watches = opts.watches or (2000 if opts.quick else 10_000)
    for tool in ("wrk", "go", "taskset"):
        if shutil.which(tool) is None:
            say(f"{tool} is needed (Debian: apt-get install wrk golang util-linux)")
            return 2
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    upstream_bin, loadgen_bin = build("upstream"), build("loadgen")
    work = Path(tempfile.mkdtemp(prefix="kop-bench-"))
    certs = issue(trustme.CA(), work, "bench")
    issuer = TestIssuer(certs)
    procs: list[subprocess.Popen[Any]] = []
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        up, up_port = start_upstream(upstream_bin, certs)
        procs.append(up)
        base_flags = proxy_flags(issuer, certs, up_port)
        proxy, port = start_proxy(base_flags, work / "proxy.err")
        procs.append(proxy)
        token = issuer.token()
        path = "/api/v1/namespaces/default/pods/bench"
        if opts.only == "audit":
            results["audit_only"] = audit_only(
                base_flags, (proxy.pid, port), work, procs, path, token, opts.rounds, opts.compare_src
            )
            report_audit_only(results["audit_only"])
            return 0
        if opts.only == "h2":
            results["h2"] = h2_only((proxy.pid, port), up_port, path, token, opts.rounds or 10)
            report_h2(results["h2"])
            return 0
        if opts.only == "http1":
            if opts.compare_src is None:
                parser.error("--only http1 needs --compare-src")
            results["http1"] = http1_only(base_flags, (proxy.pid, port), work, procs, path, token, opts)
            report_audit_only(results["http1"])
            return 0
        watch_path = "/api/v1/namespaces/default/pods?watch=true"
        if opts.only == "watches":
            stop_all([proxy])  # each measure on a proxy of its own, fresh
            measures: list[tuple[str, int, dict[str, str] | None]] = [
                ("watches", 0, None),
                ("h2_watches", opts.h2_connections, None),
            ]
            if opts.compare_src is not None:  # the same watches as the other version holds them
                compared = {**os.environ, "PYTHONPATH": str(opts.compare_src.resolve())}
                measures += [("compared_watches", 0, compared), ("compared_h2_watches", opts.h2_connections, compared)]
            for key, conns, env in measures:
                fresh, fresh_port = start_proxy(base_flags, work / f"{key}.err", env=env)
                procs.append(fresh)
                idle = rss_mb(fresh.pid)
                held = hold_watches(loadgen_bin, certs.ca, token, f"https://localhost:{fresh_port}{watch_path}",
                                    n_watches, fresh.pid, conns)  # fmt: skip
                results[key] = {**held, "proxy_idle_rss_mb": idle}
                stop_all([fresh])
            report_watches(results)
            return 0
        direct_url, proxy_url = f"https://localhost:{up_port}{path}", f"https://localhost:{port}{path}"
        idle_rss = rss_mb(proxy.pid)

        say(f"throughput: wrk -t1 -c32 -d{seconds}s --latency, direct and through the proxy")
        direct, proxied = wrk(direct_url, token, seconds, 32), wrk(proxy_url, token, seconds, 32)
        results["throughput"] = {"direct": direct, "proxy": proxied, "ratio": proxied["rps"] / direct["rps"]}

        say(f"latency: loadgen -mode rate -rate 500 -duration {seconds}s, direct and through the proxy")
        common = ["-ca", certs.ca, "-token", token, "-rate", "500", "-duration", f"{seconds}s"]
        lat_direct = loadgen(loadgen_bin, "-mode", "rate", "-url", direct_url, *common)
        lat_proxy = loadgen(loadgen_bin, "-mode", "rate", "-url", proxy_url, *common)
        results["latency_500rps"] = {
            "direct": lat_direct,
            "proxy": lat_proxy,
            "added_p50_ms": (lat_proxy["p50_us"] - lat_direct["p50_us"]) / 1000,
            "added_p99_ms": (lat_proxy["p99_us"] - lat_direct["p99_us"]) / 1000,
        }

        say("new tokens: loadgen -mode tokens (500 never-seen tokens vs one cached token)")
        token_file = work / "tokens.txt"
        token_file.write_text("\n".join(issuer.token(jti=f"bench-{i}") for i in range(500)))
        tok = loadgen(
            loadgen_bin, "-mode", "tokens", "-url", proxy_url, "-ca", certs.ca, "-token-file", str(token_file)
        )
        results["new_token"] = {**tok, "extra_ms": (tok["fresh"]["p50_us"] - tok["cached"]["p50_us"]) / 1000}

        say("observability: the plain proxy and one per setting, taking turns (audit: Metadata to a file, blocking)")
        policy = work / "audit-policy.yaml"
        policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
        settings = {
            "audit": [f"--audit-policy-file={policy}", f"--audit-log-path={work / 'audit.log'}"],
            "metrics": [f"--metrics-bind-address=127.0.0.1:{PORTS.take()}"],
            "json": ["--log-format=json"],
            "everything": [
                f"--audit-policy-file={policy}", f"--audit-log-path={work / 'audit-all.log'}",
                f"--metrics-bind-address=127.0.0.1:{PORTS.take()}", "--log-format=json",
            ],
        }  # fmt: skip
        variants = {"plain": (proxy.pid, port)}
        others = []
        for name, flags in settings.items():
            other, other_port = start_proxy([*base_flags, *flags], work / f"{name}.err")
            procs.append(other)
            others.append(other)
            variants[name] = (other.pid, other_port)
        results["observability"] = interleaved(variants, path, token, seconds)
        for other in others:
            other.send_signal(signal.SIGTERM)
            other.wait(30)
        for log in work.glob("audit*.log"):
            log.unlink()  # hundreds of MB the kernel would otherwise write back during the next measure

        watch_url = f"https://localhost:{port}{watch_path}"
        results["watches"] = {
            **hold_watches(loadgen_bin, certs.ca, token, watch_url, n_watches, proxy.pid, 0),
            "proxy_idle_rss_mb": idle_rss,
        }
        h2_proxy, h2_port = start_proxy(base_flags, work / "h2-watches.err")  # fresh: not after the HTTP/1.1 ones
        procs.append(h2_proxy)
        h2_idle = rss_mb(h2_proxy.pid)
        h2_url = f"https://localhost:{h2_port}{watch_path}"
        held = hold_watches(loadgen_bin, certs.ca, token, h2_url, n_watches, h2_proxy.pid, opts.h2_connections)
        results["h2_watches"] = {**held, "proxy_idle_rss_mb": h2_idle}
    finally:
        stop_all(procs)
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)

    report(results)
    report_watches(results)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2))
    return 0


def hold_watches(loadgen_bin: Path, ca: str, token: str, url: str, n: int, pid: int, h2_conns: int) -> dict[str, Any]:
    """N idle watches held through the proxy ``pid`` (over HTTP/1.1, a connection each; or over HTTP/2,
    ``h2_conns`` connections with N/h2_conns streams each), then its resident memory."""
    mode = ["-mode", "h2watches", "-conns", str(h2_conns)] if h2_conns else ["-mode", "watches"]
    cmd = [*PIN_LOAD, str(loadgen_bin), *mode, "-n", str(n), "-url", url, "-ca", ca, "-token", token]
    say(f"watches: {' '.join(cmd[len(PIN_LOAD) :]).replace(token, '<token>')}, then the proxy's RSS")
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        opened = json.loads(holder.stdout.readline())
        time.sleep(2)
        result = {**opened, "protocol": "HTTP/2" if h2_conns else "HTTP/1.1", "proxy_rss_mb": rss_mb(pid)}
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(60)
    finally:
        stop_all([holder])
    return result


def report_watches(r: dict[str, Any]) -> None:
    print()
    targets = (("watches", 300), ("h2_watches", 150), ("compared_watches", 300), ("compared_h2_watches", 150))
    for key, target in targets:
        if key not in r:
            continue
        w = r[key]
        per = (w["proxy_rss_mb"] - w["proxy_idle_rss_mb"]) * 1024 / max(w["open"], 1)
        conns = f" over {w['connections']} connections" if "connections" in w else ""
        version = " (--compare-src)" if key.startswith("compared") else ""
        print(f"  {w['open']} idle watches{version}, {w['protocol']}{conns}: proxy RSS {w['proxy_rss_mb']:.0f} MB "
              f"(idle {w['proxy_idle_rss_mb']:.0f} MB, {per:.1f} KB per watch), errors {w['errors']}; target <= "
              f"{target} MB for 10,000")  # fmt: skip


def h2_only(plain: tuple[int, int], up_port: int, path: str, token: str, rounds: int) -> dict[str, Any]:
    """The same GET over HTTP/1.1 (wrk, 32 connections) and HTTP/2 (h2load: one connection with 32 streams,
    four with 8 each), through the plain proxy and direct to the upstream, taking turns in 2 s runs."""
    pid, port = plain
    proxied, direct = f"https://localhost:{port}{path}", f"https://localhost:{up_port}{path}"
    variants: dict[str, tuple[int, Runner]] = {
        "http1 wrk -c32": (pid, lambda: wrk(proxied, token, 2, 32)),
        "h2 h2load -c1 -m32": (pid, lambda: h2load(proxied, token, 2, 1, 32)),
        "h2 h2load -c4 -m8": (pid, lambda: h2load(proxied, token, 2, 4, 8)),
        "direct http1 wrk -c32": (0, lambda: wrk(direct, token, 2, 32)),
        "direct h2 h2load -c1 -m32": (0, lambda: h2load(direct, token, 2, 1, 32)),
    }
    say(f"h2: {', '.join(variants)}, taking turns in 2 s runs ({rounds} rounds)")
    return take_turns(variants, rounds)


def report_h2(r: dict[str, Any]) -> None:
    print()
    for name, v in r.items():
        runs = ", ".join(f"{x:.0f}" for x in v["runs"])
        cpu = f"CPU {v['cpu_us_per_request']:5.1f} us/req (kernel {v['system_cpu_us_per_request']:5.1f})"
        print(f"  {name:<26} {v['rps']:6.0f} req/s  ratio to HTTP/1.1 {v['ratio']:.2f}  ", end="")
        print(cpu if v["cpu_us_per_request"] else "(direct)", end="")
        print(f"  non-2xx {v['non_2xx']:.0f}\n  {'':<26} runs: {runs}")
    h1, h2 = r["http1 wrk -c32"]["rps"], r["h2 h2load -c1 -m32"]["rps"]
    print(f"\n  proxy/direct: HTTP/1.1 {h1 / r['direct http1 wrk -c32']['rps']:.2f}, "
          f"HTTP/2 (1 connection) {h2 / r['direct h2 h2load -c1 -m32']['rps']:.2f}")  # fmt: skip


def http1_only(
    base_flags: list[str],
    plain: tuple[int, int],
    work: Path,
    procs: list[subprocess.Popen[Any]],
    path: str,
    token: str,
    opts: argparse.Namespace,
) -> dict[str, Any]:
    """The plain proxy against the plain proxy as the package in ``--compare-src`` is, HTTP/1.1 (wrk -c32),
    taking turns against the same upstream."""
    env = {**os.environ, "PYTHONPATH": str(opts.compare_src.resolve())}
    other, other_port = start_proxy(base_flags, work / "compared.err", env=env)
    procs.append(other)
    rounds = opts.rounds or 10
    say(f"http1: this code vs {opts.compare_src}, taking turns in 2 s wrk -c32 runs ({rounds} rounds)")
    return interleaved({"this code": plain, "compared": (other.pid, other_port)}, path, token, 0, rounds)


def audit_only(
    base_flags: list[str],
    plain: tuple[int, int],
    work: Path,
    procs: list[subprocess.Popen[Any]],
    path: str,
    token: str,
    rounds: int,
    compare_src: Path | None,
) -> dict[str, Any]:
    """The plain proxy against audit at Metadata level to a file, blocking (the default) and batch, and the
    chart's default policy (blocking), taking turns; with ``compare_src`` also audit (blocking) as another
    version of the package does it."""
    policy = work / "audit-policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n")
    variants = {"plain": plain}
    for mode in ("blocking", "batch"):
        flags = [f"--audit-policy-file={policy}", f"--audit-log-path={work / f'audit-{mode}.log'}"]
        other, other_port = start_proxy([*base_flags, *flags, f"--audit-log-mode={mode}"], work / f"{mode}.err")
        procs.append(other)
        variants[f"audit-{mode}"] = (other.pid, other_port)
    flags = [f"--audit-policy-file={chart_policy(work)}", f"--audit-log-path={work / 'audit-chart.log'}"]
    other, other_port = start_proxy([*base_flags, *flags], work / "chart.err")
    procs.append(other)
    variants["audit-chart"] = (other.pid, other_port)
    if compare_src is not None:
        flags = [f"--audit-policy-file={policy}", f"--audit-log-path={work / 'audit-compared.log'}"]
        env = {**os.environ, "PYTHONPATH": str(compare_src.resolve())}
        other, other_port = start_proxy([*base_flags, *flags], work / "compared.err", env=env)
        procs.append(other)
        variants["audit-compared"] = (other.pid, other_port)
    say(f"audit only: plain, audit blocking, audit batch, audit with the chart's policy, taking turns in 2 s wrk "
        f"runs ({rounds or 10} rounds)")  # fmt: skip
    return interleaved(variants, path, token, 0, rounds or 10)


def report_audit_only(r: dict[str, Any]) -> None:
    print()
    for name, v in r.items():
        runs = ", ".join(f"{x:.0f}" for x in v["runs"])
        cpu, kernel = v["cpu_us_per_request"], v["system_cpu_us_per_request"]
        print(f"  {name:<15} ratio {v['ratio']:.3f}  {v['rps']:6.0f} req/s  CPU {cpu:5.1f} us/req", end="")
        print(f" (kernel {kernel:5.1f})")
        print(f"  {'':<15} runs: {runs}")


def report(r: dict[str, Any]) -> None:
    t, lat, tok, w, o = r["throughput"], r["latency_500rps"], r["new_token"], r["watches"], r["observability"]
    rows = [
        ("requests/s direct", f"{t['direct']['rps']:.0f}", ""),
        ("requests/s through the proxy", f"{t['proxy']['rps']:.0f}", ">= 4000"),
        ("ratio proxy/direct", f"{t['ratio']:.2f}", ""),
        ("audit (Metadata, file): ratio to plain", f"{o['audit']['ratio']:.2f}", ">= 0.90"),
        (
            "CPU per request plain / audited (us)",
            f"{o['plain']['cpu_us_per_request']:.0f} / {o['audit']['cpu_us_per_request']:.0f}",
            "",
        ),
        ("metrics / json logs alone: ratio", f"{o['metrics']['ratio']:.2f} / {o['json']['ratio']:.2f}", ""),
        ("audit + metrics + json logs: ratio", f"{o['everything']['ratio']:.2f}", ""),
        ("p50 / p99 at full load, proxy (ms)", f"{t['proxy']['p50_ms']:.2f} / {t['proxy']['p99_ms']:.2f}", ""),
        (
            "p99 at 500 req/s direct / proxy (ms)",
            f"{lat['direct']['p99_us'] / 1000:.2f} / {lat['proxy']['p99_us'] / 1000:.2f}",
            "",
        ),
        ("added p99 at 500 req/s (ms)", f"{lat['added_p99_ms']:.2f}", "<= 2"),
        ("first request with a new token, extra (ms)", f"{tok['extra_ms']:.3f}", "<= 0.5"),
        (f"RSS with {w['open']} idle HTTP/1.1 watches (MB)", f"{w['proxy_rss_mb']:.0f}", "<= 300 (10,000)"),
        ("RSS idle (MB)", f"{w['proxy_idle_rss_mb']:.0f}", ""),
    ]
    width = max(len(a) for a, _, _ in rows)
    print()
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>14}  {target}")
    errors = t["proxy"]["non_2xx"] + lat["proxy"]["errors"] + w["errors"] + r["h2_watches"]["errors"]
    print(f"\n  errors: {errors:.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
