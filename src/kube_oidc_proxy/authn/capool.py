"""client-go's ``cert.NewPoolFromBytes`` for an issuer's ``certificateAuthority``: which PEM blocks count
as certificates, and the error when none do."""

from __future__ import annotations

import base64
import binascii
import ssl
from typing import Final

from cryptography import x509

_PEM_BEGIN: Final = b"\n-----BEGIN "
_PEM_END: Final = b"\n-----END "
_PEM_DASHES: Final = b"-----"

NO_CERTIFICATES: Final = "data does not contain any valid RSA or ECDSA certificates"


def _pem_line(data: bytes) -> tuple[bytes, bytes]:
    newline = data.find(b"\n")
    if newline < 0:
        return data.rstrip(b" \t"), b""
    end = newline - 1 if newline > 0 and data[newline - 1] == 0x0D else newline
    return data[:end].rstrip(b" \t"), data[newline + 1 :]


def _pem_block(data: bytes) -> tuple[tuple[bytes, bool, bytes] | None, bytes]:
    """Go's ``pem.Decode``: the next block's (type, has headers, contents) and the rest, or None."""
    rest = data
    while True:
        if rest.startswith(_PEM_BEGIN[1:]):
            rest = rest[len(_PEM_BEGIN) - 1 :]
        else:
            start = rest.find(_PEM_BEGIN)
            if start < 0:
                return None, data
            rest = rest[start + len(_PEM_BEGIN) :]
        type_line, rest = _pem_line(rest)
        if not type_line.endswith(_PEM_DASHES):
            continue
        block_type = type_line[: -len(_PEM_DASHES)]
        headers = False
        while True:
            if not rest:
                return None, data
            line, following = _pem_line(rest)
            if b":" not in line:
                break
            headers, rest = True, following
        if not headers and rest.startswith(_PEM_END[1:]):
            end, trailer_start = 0, len(_PEM_END) - 1
        else:
            end = rest.find(_PEM_END)
            trailer_start = end + len(_PEM_END)
        if end < 0:
            continue
        trailer_length = len(block_type) + len(_PEM_DASHES)
        trailer = rest[trailer_start : trailer_start + trailer_length]
        if len(trailer) < trailer_length or not trailer.startswith(block_type) or not trailer.endswith(_PEM_DASHES):
            continue
        if _pem_line(rest[trailer_start + trailer_length :])[0]:
            continue
        body = rest[:end].translate(None, b" \t\r\n")
        try:
            contents = base64.b64decode(body, validate=True)
        except binascii.Error:
            continue
        return (block_type, headers, contents), _pem_line(rest[end + len(_PEM_END) - 1 :])[1]


def parse_ca(pem: str) -> tuple[list[bytes], str]:
    """client-go ``cert.ParseCertsPEM``: the DER certificates, or Go's error. CERTIFICATE blocks with
    headers and other blocks are skipped; the first malformed certificate stops it (its reason is worded
    by the proxy: cryptography, not Go's crypto/x509, parses it)."""
    certificates: list[bytes] = []
    data = pem.encode("utf-8", "surrogateescape")
    while data:
        block, data = _pem_block(data)
        if block is None:
            break
        block_type, headers, contents = block
        if block_type != b"CERTIFICATE" or headers:
            continue
        try:
            x509.load_der_x509_certificate(contents)
        except ValueError:
            return certificates, "x509: malformed certificate"
        certificates.append(contents)
    return certificates, "" if certificates else NO_CERTIFICATES


def ca_bundle(certificates: list[bytes]) -> bytes:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in certificates).encode("ascii")
