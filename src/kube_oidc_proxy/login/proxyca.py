"""Which CA a kubeconfig should tell kubectl to trust for the proxy: the self-signed certificate that ends the
serving certificate chain, when the chain file has one (a private CA, or a self-signed serving certificate).
A chain that stops below its root is issued by a CA clients already trust (a public one, or one installed by
the organisation): the kubeconfig then names none, and kubectl uses the system roots.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding


def self_signed_root(chain_pem: bytes) -> bytes | None:
    """The PEM of the chain's last certificate if it is self-signed (its own issuer, its signature its own)."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        return None
    last = chain[-1]
    if last.issuer != last.subject:
        return None
    try:
        last.verify_directly_issued_by(last)
    except (ValueError, TypeError, InvalidSignature):
        return None
    return last.public_bytes(Encoding.PEM)
