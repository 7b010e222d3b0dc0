"""TLS contexts: the serving side (SNI certificates, hot reload) and the client sides (kube-apiserver, IdP).

Serving uses one outer context whose ``sni_callback`` hands every handshake the current context for the
requested name (clients without SNI get the default certificate). Reload builds complete new contexts
from the files and swaps them in one assignment, so a half-written Secret update never serves a broken
pair: if loading fails, the old certificates stay and we retry at the next poll. Polling (stat of the
files) survives Kubernetes Secret volumes, which swap a ``..data`` symlink rather than write in place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from kube_oidc_proxy.config import ServingConfig, SNICertKey
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.tlsnames import TLS_VERSIONS, openssl_cipher_string

log = logging.getLogger("kop.tls")


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def certificate_names(cert_file: str) -> list[str]:
    """DNS names of a certificate (SANs, else the CN), used when --tls-sni-cert-key lists no domains."""
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in names]


@dataclass(frozen=True, slots=True)
class _Contexts:
    default: ssl.SSLContext
    exact: dict[str, ssl.SSLContext]
    wildcard: dict[str, ssl.SSLContext]  # "example.com" for "*.example.com"

    def for_name(self, name: str | None) -> ssl.SSLContext:
        if not name:
            return self.default
        name = name.lower().rstrip(".")
        ctx = self.exact.get(name)
        if ctx is None and "." in name:
            ctx = self.wildcard.get(name.split(".", 1)[1])
        return ctx or self.default


class ServingTLS:
    def __init__(self, config: ServingConfig) -> None:
        self._config = config
        self._files = [config.tls_cert_file, config.tls_private_key_file]
        for sni in config.sni_cert_keys:
            self._files += [sni.cert_file, sni.key_file]
        self._stamps = self._read_stamps()
        self._contexts = self._build()
        self.context = self._new_context()
        self._load_pair(self.context, config.tls_cert_file, config.tls_private_key_file)
        self.context.sni_callback = self._on_sni
        self.reloads = 0

    def _read_stamps(self) -> list[tuple[int, int, int]]:
        try:
            return [_stamp(p) for p in self._files]
        except OSError as exc:
            raise StartupError(f"cannot read TLS file {exc.filename!r}: {exc.strerror}") from None

    def _new_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self._config.tls_min_version]
        ciphers = openssl_cipher_string(self._config.tls_cipher_suites)
        if ciphers:
            try:
                ctx.set_ciphers(ciphers)
            except ssl.SSLError as exc:
                raise StartupError(f"--tls-cipher-suites: OpenSSL accepts none of them ({exc})") from None
        # h2 first, as kube-apiserver offers it; clients that upgrade (exec, cp, port-forward) ask for http/1.1
        ctx.set_alpn_protocols(["h2", "http/1.1"] if self._config.http2 else ["http/1.1"])
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        return ctx

    def _load_pair(self, ctx: ssl.SSLContext, cert: str, key: str) -> None:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"cannot load certificate {cert!r} with key {key!r}: {exc}") from None

    def _context_for(self, cert: str, key: str) -> ssl.SSLContext:
        ctx = self._new_context()
        self._load_pair(ctx, cert, key)
        return ctx

    def _build(self) -> _Contexts:
        default = self._context_for(self._config.tls_cert_file, self._config.tls_private_key_file)
        exact: dict[str, ssl.SSLContext] = {}
        wildcard: dict[str, ssl.SSLContext] = {}
        for sni in self._config.sni_cert_keys:
            self._add_sni(sni, exact, wildcard)
        return _Contexts(default, exact, wildcard)

    def _add_sni(self, sni: SNICertKey, exact: dict[str, ssl.SSLContext], wildcard: dict[str, ssl.SSLContext]) -> None:
        ctx = self._context_for(sni.cert_file, sni.key_file)
        try:
            names = list(sni.domains) or certificate_names(sni.cert_file)
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot read certificate {sni.cert_file!r}: {exc}") from None
        for name in names:
            name = name.lower()
            if name.startswith("*."):
                wildcard.setdefault(name[2:], ctx)
            else:
                exact.setdefault(name, ctx)

    def _on_sni(self, sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        sslobj.context = self._contexts.for_name(name)

    def reload_if_changed(self) -> bool:
        """Poll the files; swap in new contexts if they changed and load cleanly."""
        try:
            stamps = [_stamp(p) for p in self._files]
        except OSError as exc:
            log.warning("TLS file unreadable, keeping the current certificates: %s", exc)
            return False
        if stamps == self._stamps:
            return False
        try:
            contexts = self._build()
        except StartupError as exc:
            log.warning("TLS files changed but do not load, keeping the current certificates: %s", exc)
            return False
        self._contexts = contexts
        self._stamps = stamps
        self.reloads += 1
        log.info("reloaded serving certificates")
        return True


@contextlib.contextmanager
def _pem_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    """ssl can only load a client certificate from files: write them privately, delete at once."""
    with tempfile.TemporaryDirectory(prefix="kop-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield str(cert_path), str(key_path)


def client_context(
    ca_pem: bytes | None,
    *,
    insecure: bool = False,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    what: str = "kube-apiserver",
    alpn: tuple[str, ...] = ("http/1.1",),
) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise StartupError(f"the CA bundle for {what} holds no valid certificate: {exc}") from None
    if client_cert_pem and client_key_pem:
        with _pem_files(client_cert_pem, client_key_pem) as (cert, key):
            try:
                ctx.load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise StartupError(f"the client certificate for {what} does not load: {exc}") from None
    ctx.set_alpn_protocols(list(alpn))
    return ctx
