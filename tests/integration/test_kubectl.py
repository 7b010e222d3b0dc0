"""kubectl (the real binary on this machine) through the proxy: it works, and errors read well."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.conftest import ProxyHandle


async def kubectl(proxy: ProxyHandle, tmp_path: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "empty-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cmd = [
        "kubectl",
        f"--kubeconfig={kubeconfig}",
        f"--server=https://localhost:{proxy.port}",
        f"--certificate-authority={proxy.ca_file}",
        f"--token={token}",
        f"--cache-dir={tmp_path / 'cache'}",
        *args,
    ]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60, check=False)


async def test_kubectl_get_pods_through_the_proxy(proxy: ProxyHandle, tmp_path: Path) -> None:
    result = await kubectl(proxy, tmp_path, proxy.issuer.token(), "get", "pods", "-n", "default")
    assert result.returncode == 0, result.stderr
    assert "web-1" in result.stdout.split()
    assert proxy.upstream.requests[-1].one("impersonate-user") == "alice"


async def test_kubectl_prints_unauthorized_for_a_bad_token(proxy: ProxyHandle, tmp_path: Path) -> None:
    expired = proxy.issuer.token(exp=1)
    result = await kubectl(proxy, tmp_path, expired, "get", "pods")
    assert result.returncode == 1
    assert "error: You must be logged in to the server" in result.stderr
    raw = await kubectl(proxy, tmp_path, expired, "get", "--raw", "/api/v1/pods")
    assert "error: You must be logged in to the server (Unauthorized: the token has expired)" in raw.stderr
    assert proxy.upstream.requests == []


async def test_kubectl_as_prints_a_forbidden_message(proxy: ProxyHandle, tmp_path: Path) -> None:
    result = await kubectl(proxy, tmp_path, proxy.issuer.token(), "get", "--raw", "/api/v1/pods", "--as=admin")
    assert result.returncode == 1
    assert "Error from server (Forbidden)" in result.stderr
    assert 'users "admin" is forbidden: User "alice" cannot impersonate resource "users"' in result.stderr
