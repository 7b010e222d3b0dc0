"""Serving-certificate Secrets as the chart may find them in a cluster on `helm upgrade`: its own (a CA and
a certificate it signed, any time left), the Go chart's (a certificate with its names only as the common
name, no subjectAltName, no ca.crt), or one an earlier chart version left (no ca.key). Made with
cryptography, so the chart's reading of them is checked against an independent X.509 implementation.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Pair:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def cert_pem(self) -> bytes:
        return _pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)


def ca(name: str = "earlier-ca", *, days_left: float = 3000) -> Pair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=300))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Pair(cert, key)


def serving(issuer: Pair | None, names: list[str], *, days_left: float, common_name: str = "") -> Pair:
    """A certificate for ``names`` (subjectAltName; none when empty), signed by ``issuer`` or by itself."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days_left)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=365))
        .not_valid_after(not_after)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return Pair(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def secret_data(leaf: Pair, authority: Pair | None = None, *, with_ca_key: bool = True) -> dict[str, str]:
    """A Secret's ``data`` (base64 values): tls.crt and tls.key, and the CA's when given."""
    data = {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem}
    if authority is not None:
        data["ca.crt"] = authority.cert_pem
        if with_ca_key:
            data["ca.key"] = authority.key_pem
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": data,
    }


def load(data: dict[str, str], key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(data[key]))


def dns_names(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(x509.DNSName))


def days_left(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400


def signed_by(cert: x509.Certificate, authority: x509.Certificate) -> bool:
    public_key = authority.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    except InvalidSignature:
        return False
    return cert.issuer == authority.subject
