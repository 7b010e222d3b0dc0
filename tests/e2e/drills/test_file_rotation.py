"""Drill: the proxy's serving certificate and key and its token file for kube-apiserver are rotated on disk
while several clients keep connections open and send requests through it.

The files live in a directory updated the way the kubelet updates Secret and projected volumes: each
version in its own timestamped directory, ``..data`` a symlink to the current one, swapped atomically by
renaming a new symlink over it, and the visible names (``tls.crt``, ``tls.key``, ``token``) symlinks
through ``..data``. What users must notice: no failed request and no dropped connection; new connections
get the new certificate within the documented poll (2 s, docs/flags.md ``--tls-cert-file``); the new
token is what the proxy sends within its check interval (5 s, docs/flags.md "Token files").
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.cluster.cluster import PROXY_NAMESPACE, Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import SERVICE_ACCOUNT, Proxy
from tests.e2e.drills.load import SteadyLoad

TLS_POLL_SECONDS = 2.0  # docs/flags.md: --tls-cert-file is polled every 2 s
TOKEN_CHECK_SECONDS = 5.0  # docs/flags.md: token files are checked every 5 s
ROTATIONS = 3
CLIENTS = 4
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


class AtomicVolume:
    """A directory of files updated as the kubelet's atomic writer does (Secret, projected volumes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.versions = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.versions += 1
        version = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.versions:09d}"
        (self.root / version).mkdir(mode=0o755)
        for name, data in files.items():
            (self.root / version / name).write_bytes(data)
        old = os.readlink(self.root / "..data") if (self.root / "..data").is_symlink() else None
        (self.root / "..data_tmp").symlink_to(version)
        os.rename(self.root / "..data_tmp", self.root / "..data")  # the one atomic step
        for name in files:
            if not (self.root / name).is_symlink():
                (self.root / name).symlink_to(Path("..data") / name)
        if old is not None:
            shutil.rmtree(self.root / old)


def served_certificate(port: int, ca_file: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def jti_of(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def test_rotating_the_serving_certificate_and_the_token_file_under_load_fails_no_request(
    cluster: Cluster, tmp_path: Path, figure: Callable[[str], None]
) -> None:
    assert cluster.ca is not None
    volume = AtomicVolume(tmp_path / "volume")

    def version(n: int) -> tuple[bytes, str]:
        pair = cluster.ca.serving(f"kube-oidc-proxy-rotated-{n}")  # type: ignore[union-attr]
        token = cluster.api().token(PROXY_NAMESPACE, SERVICE_ACCOUNT, seconds=600)
        volume.write({"tls.crt": pair.cert.read_bytes(), "tls.key": pair.key.read_bytes(), "token": token.encode()})
        return pair.cert.read_bytes(), token

    version(0)
    proxy = Proxy(cluster)
    try:
        proxy.start(
            f"--tls-cert-file={volume.root / 'tls.crt'}",  # the later flag wins over the harness's own pair
            f"--tls-private-key-file={volume.root / 'tls.key'}",
            kubeconfig_user={"tokenFile": str(volume.root / "token")},
        )
        alice = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
        cert_seen: list[float] = []
        token_seen: list[float] = []
        with SteadyLoad(proxy.port, cluster.ca_file, alice, clients=CLIENTS) as load:
            load.wait_for_successes(10)
            for n in range(1, ROTATIONS + 1):
                audit_offset = cluster.audit_log.stat().st_size
                cert_pem, token = version(n)
                rotated = time.monotonic()
                new_der, jti = pem_to_der(cert_pem), f"JTI={jti_of(token)}"

                def serves_new_certificate(der: bytes = new_der) -> bool:
                    return served_certificate(proxy.port, cluster.ca_file) == der

                def sends_new_token(jti: str = jti, offset: int = audit_offset) -> bool:
                    return jti in _audit_since(cluster.audit_log, offset)  # kube-apiserver names the token it got

                cert_seen.append(_until(serves_new_certificate, rotated, TLS_POLL_SECONDS + 8))
                token_seen.append(_until(sends_new_token, rotated, TOKEN_CHECK_SECONDS + 10))
                ok_before = load.ok
                load.wait_for_successes(ok_before + 10)
        assert load.failures == [], f"requests failed during the rotations: {load.failures[:5]}"
        assert load.connections == CLIENTS, f"{load.connections - CLIENTS} connections were dropped"
    finally:
        proxy.stop()
    figure(
        f"{ROTATIONS} rotations of certificate, key and token under {CLIENTS} clients: {load.ok} requests,"
        f" 0 failed, 0 connections dropped; new certificate served after at most {max(cert_seen):.1f} s"
        f" (poll {TLS_POLL_SECONDS:g} s), new token in use after at most {max(token_seen):.1f} s"
        f" (check {TOKEN_CHECK_SECONDS:g} s)"
    )


def _until(condition: Callable[[], bool], since: float, timeout: float) -> float:
    """Seconds from ``since`` until ``condition`` held, polled, failing after ``timeout``."""
    while not condition():
        assert time.monotonic() - since < timeout, f"not seen within {timeout:g} s"
        time.sleep(0.1)
    return time.monotonic() - since


def _audit_since(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")
