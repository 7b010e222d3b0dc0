"""Run the real command (``python -m kube_oidc_proxy``) as a subprocess with real flags."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from tests.support.certs import CertFiles
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyProcess:
    proc: subprocess.Popen[bytes]
    port: int
    probe_port: int
    ca_file: str
    stdout_path: str
    stderr_path: str
    args: list[str] = field(default_factory=list)

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


def start_process(
    tmp: str,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    certs: CertFiles,
    *extra: str,
    env: dict[str, str] | None = None,
) -> ProxyProcess:
    port, probe_port = free_port(), free_port()
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
        proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env)
    return ProxyProcess(proc, port, probe_port, certs.ca, out, err, args)
