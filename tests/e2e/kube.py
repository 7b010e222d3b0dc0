"""kubectl (the real binary) as a user of the proxy, with a kubeconfig holding that user's id token."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.cluster.cluster import NAMESPACE, kubeconfig
from tests.e2e.cluster.proxy import Proxy

# client-go logs these at -v=4 when it falls back from WebSocket to SPDY: a proxy bug would hide behind it.
FALLBACK_MARKERS = ("RemoteCommand fallback", "fallback to secondary dialer")


@dataclass
class Kubectl:
    kubeconfig: Path
    token: str
    home: Path

    @classmethod
    def through(cls, proxy: Proxy, token: str, home: Path) -> Kubectl:
        path = home / "kubeconfig"
        path.write_text(kubeconfig(proxy.url, proxy.cluster.ca_file, user={"token": token}, namespace=NAMESPACE))
        return cls(path, token, home)

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        spdy: bool = False,
        timeout: float = 60,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            capture_output=True,
            env=self._env(spdy, env),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result

    def popen(self, *args: str, spdy: bool = False) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["kubectl", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env(spdy, None),
        )

    def _env(self, spdy: bool, extra: dict[str, str] | None) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home), **(extra or {})}
        if spdy:
            env |= {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
        return env


def api_call(
    proxy: Proxy, method: str, path: str, token: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One request to the API through ``proxy`` with a bearer token (urllib, not kubectl): the status and the
    JSON body, a refusal's Status included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        proxy.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})},
    )
    ctx = ssl.create_default_context(cafile=str(proxy.cluster.ca_file))
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def whoami(proxy: Proxy, token: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """kube-apiserver's own answer to "who am I" (kubectl auth whoami)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return api_call(proxy, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token, headers, review)


# Go's HTTP/2 client logs its connections and frames with this set (kubectl is a Go program).
HTTP2_DEBUG = {"GODEBUG": "http2debug=1"}


def spoke_http2(result: subprocess.CompletedProcess[bytes], proxy: Proxy) -> bool:
    """Whether a kubectl run with ``env=HTTP2_DEBUG`` opened an HTTP/2 connection to the proxy."""
    opened = re.compile(rb"http2: Transport creating client conn 0x[0-9a-f]+ to 127\.0\.0\.1:(\d+)$", re.MULTILINE)
    return str(proxy.port).encode() in opened.findall(result.stderr)


def no_fallback(result: subprocess.CompletedProcess[bytes]) -> None:
    stderr = result.stderr.decode(errors="replace")
    for marker in FALLBACK_MARKERS:
        assert marker not in stderr, f"kubectl fell back from WebSocket to SPDY: {stderr[-2000:]}"
