"""The proxy under test: the real command, as a subprocess, authenticated to kube-apiserver as a
ServiceAccount whose short-lived TokenRequest token sits in a file that ``rotate()`` replaces."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.cluster.cluster import PROXY_NAMESPACE, Cluster, kubeconfig
from tests.e2e.cluster.idp import CLIENT_ID
from tests.e2e.cluster.processes import Process, wait_until
from tests.support.ports import PortHolder

SERVICE_ACCOUNT = "kube-oidc-proxy"

# Whether the proxies the tests start serve HTTP/2 (ALPN h2, then http/1.1: the proxy's default). Only
# tests/e2e/test_http1_serving.py turns it off, for the proxies started while its tests run.
SERVE_HTTP2 = True


@dataclass
class Proxy:
    cluster: Cluster
    process: Process | None = None
    port: int = 0
    probe_port: int = 0
    token_file: Path = field(default_factory=Path)
    rotations: int = 0
    http2: bool = True  # whether it serves HTTP/2 (SERVE_HTTP2 when it was started)
    ports: PortHolder = field(default_factory=PortHolder)  # held until stop(); take more here for extra flags
    _stop_rotation: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def rotate(self) -> None:
        """A fresh TokenRequest token, written atomically, as the kubelet does for projected tokens."""
        token = self.cluster.api().token(PROXY_NAMESPACE, SERVICE_ACCOUNT, seconds=600)
        partial = self.token_file.with_suffix(".new")
        partial.write_text(token)
        os.replace(partial, self.token_file)
        self.rotations += 1

    def start(
        self,
        *extra: str,
        rotate_every: float = 0.0,
        wait_ready: bool = True,
        authentication_config: Path | None = None,
        kubeconfig_user: dict[str, str] | None = None,
        server: str = "",
    ) -> None:
        """Run the proxy for the cluster's Keycloak: with the --oidc-* flags, or with the given
        AuthenticationConfiguration file instead (the two cannot be combined). ``kubeconfig_user``: how the
        proxy authenticates to kube-apiserver instead of its ServiceAccount's token file. ``server``: the
        kube-apiserver address in the proxy's kubeconfig, instead of the cluster's (a stand-in's)."""
        cluster = self.cluster
        self.http2 = SERVE_HTTP2
        self.port, self.probe_port = self.ports.take(), self.ports.take()
        # one directory per proxy: a test may run two, each rotating its own token file
        work = cluster.workdir / f"proxy-{self.port}"
        work.mkdir(exist_ok=True)
        assert cluster.ca is not None
        tls = cluster.ca.serving("kube-oidc-proxy")
        self.token_file = work / "token"
        self.rotate()
        config = work / "kubeconfig"
        user = kubeconfig_user or {"tokenFile": str(self.token_file)}
        config.write_text(kubeconfig(server or cluster.server, cluster.ca_file, user=user))
        oidc = [
            f"--oidc-issuer-url={cluster.issuer}",
            f"--oidc-client-id={CLIENT_ID}",
            f"--oidc-ca-file={cluster.ca_file}",
            "--oidc-username-claim=email",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
        ]
        self.process = Process(
            f"kube-oidc-proxy-{self.port}",
            [
                sys.executable,
                "-m",
                "kube_oidc_proxy",
                *(oidc if authentication_config is None else [f"--authentication-config={authentication_config}"]),
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--readiness-probe-port={self.probe_port}",
                f"--tls-cert-file={tls.cert}",
                f"--tls-private-key-file={tls.key}",
                f"--kubeconfig={config}",
                *([] if self.http2 else ["--disable-http2-serving"]),
                *extra,
            ],
            cluster.workdir / "logs",
        )
        if wait_ready:
            wait_until("kube-oidc-proxy", lambda: _probe_ok(self.probe_port), 30, self.process)
        else:
            wait_until("kube-oidc-proxy", lambda: _probe_answers(self.probe_port), 30, self.process)
        if rotate_every:
            threading.Thread(target=self._rotate_loop, args=(rotate_every,), daemon=True).start()

    def _rotate_loop(self, every: float) -> None:
        while not self._stop_rotation.wait(every):
            # kube-apiserver may be down for a drill: the token in the file stays valid, try at the next tick
            with contextlib.suppress(OSError):
                self.rotate()

    def stop(self) -> None:
        self._stop_rotation.set()
        if self.process is not None:
            self.process.stop()
        self.ports.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.popen.pid

    def access_lines(self) -> list[str]:
        assert self.process is not None
        return [ln for ln in self.process.log_path.read_text(errors="replace").splitlines() if " Au" in ln]


def probe_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _probe_answers(port: int) -> bool:
    return probe_status(port) in (200, 503)


def _probe_ok(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
        return bool(response.status == 200)
