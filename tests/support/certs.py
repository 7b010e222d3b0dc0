"""Test certificates: one CA (trustme) issuing loopback server certificates, written to a temp dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    cert: str
    key: str
    ca: str


def issue(ca: trustme.CA, directory: Path, name: str, *hosts: str) -> CertFiles:
    hosts = hosts or ("127.0.0.1", "localhost", "::1")
    server = ca.issue_cert(*hosts)
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    ca_file = directory / f"{name}-ca.crt"
    server.private_key_pem.write_to_path(str(key))
    server.cert_chain_pems[0].write_to_path(str(cert))
    for extra in server.cert_chain_pems[1:]:
        with cert.open("ab") as f:
            f.write(extra.bytes())
    ca.cert_pem.write_to_path(str(ca_file))
    return CertFiles(str(cert), str(key), str(ca_file))
