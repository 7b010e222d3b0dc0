"""A pending login sealed for the browser to carry: AES-256-GCM over a compact JSON, URL-safe base64.

Layout (before base64url, unpadded): one version byte, the 12-byte GCM nonce, then the ciphertext and its
16-byte tag. The associated data is the version byte and the state, so a blob only opens for the state it
was sealed for (a cookie moved under another login's name is refused). ``unseal`` answers None, never an
exception, for anything it cannot trust: too long, not base64url (or not in its one canonical spelling),
another version, a flipped or missing byte, another key, another state, a body of the wrong shape, expired.

The key is derived (HKDF-SHA256, a fixed login-only ``info``) from the proxy's default serving private key,
the one of ``--tls-private-key-file``: every worker and every replica that serves the same certificate
derives the same key without a flag or a shared store. Rotating the serving key changes it, so a login
begun before the rotation and finished after it is refused once ("sign in again").
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kube_oidc_proxy.login.pending import PendingLogin

VERSION: Final = 1
KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
# The cookie's value; a browser keeps a cookie of at most 4096 bytes, name and value together (RFC 6265bis
# §5.6). A login seals ~330 bytes (~450 characters); an operator's very long issuer URL could pass this.
MAX_TEXT: Final = 3072
INFO: Final = b"kube-oidc-proxy browser login: pending-login cookie, AES-256-GCM, v1"

_TEXT: Final = re.compile(r"[A-Za-z0-9_-]+")
_PRIVATE_KEY: Final = re.compile(rb"-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)
_FIELDS: Final = {"s": "state", "n": "nonce", "v": "verifier", "i": "issuer", "r": "redirect_uri"}


def derive_key(private_key_pem: bytes) -> bytes:
    """The sealing key from a PEM file holding the serving private key (perhaps with certificates); ValueError
    when it holds none that loads. The key is re-encoded first (PKCS#8 DER), so the same key written as
    PKCS#1 or PKCS#8, or with other blocks around it, gives the same sealing key."""
    found = _PRIVATE_KEY.search(private_key_pem)
    if found is None:
        raise ValueError("no unencrypted PEM private key in the file")
    try:
        key = serialization.load_pem_private_key(found.group(0), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the private key does not load: {exc}") from None
    material = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=INFO).derive(material)


def _associated(state: str) -> bytes:
    return bytes([VERSION]) + state.encode("utf-8", "surrogatepass")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def seal(key: bytes, login: PendingLogin) -> str:
    body = {short: getattr(login, name) for short, name in _FIELDS.items()}
    body["e"] = login.expires_at
    plain = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    nonce = os.urandom(NONCE_BYTES)  # random per seal: far below GCM's 2**32 messages per key
    return _encode(bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, plain, _associated(login.state)))


def unseal(key: bytes, text: str, state: str, now: float) -> PendingLogin | None:
    """The login sealed in ``text`` for ``state``, if it is intact, ours and not expired at ``now``."""
    if len(text) > MAX_TEXT or not _TEXT.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if _encode(raw) != text:  # unused low bits set: another spelling of the same bytes
        return None
    if len(raw) < 1 + NONCE_BYTES + TAG_BYTES or raw[0] != VERSION:
        return None
    nonce, sealed = raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, _associated(state))
        body = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    login = _login(body)
    if login is None or login.state != state or not login.expires_at > now:
        return None
    return login


def _login(body: Any) -> PendingLogin | None:
    """The login from an opened body, checked for shape (a body we sealed always has it)."""
    if not isinstance(body, dict) or body.keys() != {*_FIELDS, "e"}:
        return None
    texts = {name: body[short] for short, name in _FIELDS.items()}
    expires_at = body["e"]
    if not all(isinstance(value, str) for value in texts.values()):
        return None
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float) or not math.isfinite(expires_at):
        return None
    return PendingLogin(expires_at=float(expires_at), **texts)
