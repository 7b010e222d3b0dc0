"""Run the real command (``python -m kube_oidc_proxy``) as a subprocess with real flags."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.certs import CertFiles
from tests.support.issuer import TestIssuer
from tests.support.ports import PortHolder
from tests.support.upstream import RecordingUpstream


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[bytes]
    port: int
    probe_port: int
    ca_file: str
    stdout_path: str
    stderr_path: str
    args: list[str] = field(default_factory=list)
    ports: PortHolder = field(default_factory=PortHolder)  # its port numbers, held until it is stopped

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited with {self.proc.returncode}: {self.stderr()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"proxy not ready after {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stdout(self) -> str:
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.ports.close()

    def kill(self) -> None:
        """Gone with its workers, whatever state it was in, and its ports released (for ``finally``
        blocks). The whole process group: a killed parent cannot pass the signal on to ``--workers``."""
        if self.proc.returncode is None:  # not reaped yet: its pid, the group's id, is still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.ports.close()


def start_process(
    tmp: str,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    certs: CertFiles,
    *extra: str,
    env: dict[str, str] | None = None,
    ports: PortHolder | None = None,
) -> ProxyProcess:
    """Start the proxy on two ports of ``ports`` (a holder of its own by default), held until ``stop``;
    take more from the same holder for other flags (``process.ports`` after the start)."""
    ports = ports or PortHolder()
    port, probe_port = ports.take(), ports.take()
    args = [
        sys.executable,
        "-m",
        "kube_oidc_proxy",
        f"--oidc-issuer-url={issuer.url}",
        "--oidc-client-id=kube",
        f"--oidc-ca-file={issuer.ca_file}",
        "--oidc-groups-claim=groups",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--readiness-probe-port={probe_port}",
        f"--tls-cert-file={certs.cert}",
        f"--tls-private-key-file={certs.key}",
        f"--server={upstream.url}",
        f"--certificate-authority={certs.ca}",
        "--token=proxy-service-account-token",
        *extra,
    ]
    out, err = os.path.join(tmp, f"proxy-{port}.out"), os.path.join(tmp, f"proxy-{port}.err")
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
    return ProxyProcess(proc, port, probe_port, certs.ca, out, err, args, ports)


@contextlib.contextmanager
def running_process(
    tmp: str, issuer: TestIssuer, upstream: RecordingUpstream, certs: CertFiles, *extra: str
) -> Iterator[ProxyProcess]:
    """``start_process``, ready to serve; killed at the end, whatever the test did to it."""
    proc = start_process(tmp, issuer, upstream, certs, *extra)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()
