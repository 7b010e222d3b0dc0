"""The JWT authenticators in use: from the ``--oidc-*`` flags, or from an AuthenticationConfiguration file
that is re-read when it changes.

A reload swaps the authenticators between two requests: requests in flight finish with the ones they
started with, the verified-token cache is emptied (mappings may have changed), and issuers whose URL,
discovery URL and CA did not change keep their signing keys (no refetch, no moment without keys). A file
that no longer parses or validates changes nothing: the old configuration stays, the log says why, and the
failure is counted in the metrics.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.cache import TokenCache
from kube_oidc_proxy.authn.cel import Compiler
from kube_oidc_proxy.authn.fielderror import AuthConfigError
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import JWTAuthenticatorSpec
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.server.tls import client_context

log = logging.getLogger("kop.authn")

SourceKey = tuple[str, str | None, bytes | None]  # what a KeySource fetches from, and trusts


def _source_key(spec: JWTAuthenticatorSpec) -> SourceKey:
    return (spec.issuer_url, spec.discovery_url, spec.ca_pem)


class Authentication:
    def __init__(
        self,
        specs: list[JWTAuthenticatorSpec],
        *,
        allow_system_identities: bool = False,
        metrics: Metrics | None = None,
        config_file: str = "",
        config_digest: bytes = b"",
    ) -> None:
        self._allow_system = allow_system_identities
        self._metrics = metrics
        self._config_file = config_file
        self._digest = config_digest  # of the file content in use, or of the last one refused
        self._sources: dict[SourceKey, KeySource] = {}
        self._retired: list[KeySource] = []  # sources a reload stopped using, closed after the swap
        self._started = False
        self.token_authenticator = TokenAuthenticator(self._build(specs), TokenCache())

    @classmethod
    def from_file(
        cls, path: str, *, allow_system_identities: bool = False, metrics: Metrics | None = None
    ) -> Authentication:
        content = _read(path)
        try:
            config = parse_authentication_config(content, _compiler())
        except AuthConfigError as exc:
            raise StartupError(f"--authentication-config {path}: {_one_line(exc.errors)}") from None
        if not config.authenticators:
            log.warning("--authentication-config %s has no jwt authenticators: every token will be refused", path)
        return cls(
            list(config.authenticators),
            allow_system_identities=allow_system_identities,
            metrics=metrics,
            config_file=path,
            config_digest=hashlib.sha256(content).digest(),
        )

    @property
    def key_sources(self) -> list[KeySource]:
        return [a.keys for a in self.token_authenticator.authenticators]

    def _build(self, specs: list[JWTAuthenticatorSpec]) -> list[JWTAuthenticator]:
        sources: dict[SourceKey, KeySource] = {}
        authenticators = []
        for spec in specs:
            key = _source_key(spec)
            source = self._sources.get(key) or self._new_source(spec)
            sources[key] = source
            authenticators.append(JWTAuthenticator(spec, source, allow_system_identities=self._allow_system))
        self._retired = [s for k, s in self._sources.items() if k not in sources]
        self._sources = sources
        return authenticators

    def _new_source(self, spec: JWTAuthenticatorSpec) -> KeySource:
        what = f"the OIDC issuer {spec.issuer_url}"
        source = KeySource(spec.issuer_url, client_context(spec.ca_pem, what=what), discovery_url=spec.discovery_url)
        if self._metrics is not None:
            source.on_fetch = self._metrics.jwks_fetch_counter(spec.issuer_url)
        if self._started:
            source.start()
        return source

    def start(self) -> None:
        self._started = True
        for source in self._sources.values():
            source.start()

    async def close(self) -> None:
        for source in [*self._sources.values(), *self._retired]:
            await source.close()

    async def reload_if_changed(self) -> bool:
        """Re-read the file; True if a changed, valid configuration is now in use."""
        if not self._config_file:
            return False
        try:
            content = _read(self._config_file)
        except StartupError as exc:
            return self._refuse(hashlib.sha256(str(exc).encode()).digest(), str(exc))
        digest = hashlib.sha256(content).digest()
        if digest == self._digest:
            return False
        try:
            config = parse_authentication_config(content, _compiler())
        except AuthConfigError as exc:
            return self._refuse(digest, _one_line(exc.errors))
        self._digest = digest
        self.token_authenticator.replace(self._build(list(config.authenticators)))
        in_use = {s.issuer_url for s in self._sources.values()}
        for source in self._retired:
            await source.close()
            if self._metrics is not None and source.issuer_url not in in_use:
                self._metrics.jwks_forget(source.issuer_url)  # an issuer gone without keys alerts no more
        self._retired = []
        issuers = ", ".join(s.issuer_url for s in config.authenticators) or "none"
        log.info("--authentication-config %s changed: now using issuers %s", self._config_file, issuers)
        if self._metrics is not None:
            self._metrics.config_reloaded(True)
        return True

    def _refuse(self, digest: bytes, why: str) -> bool:
        if digest != self._digest:  # say it once per bad version of the file, not on every poll
            log.warning(
                "--authentication-config %s is not valid, keeping the previous configuration: %s",
                self._config_file,
                why,
            )
            if self._metrics is not None:
                self._metrics.config_reloaded(False)
        self._digest = digest
        return False


def _one_line(errors: list[str]) -> str:
    # a few of kube-apiserver's texts span lines (yaml.v2's duplicate keys); a log line and an exit message do not
    return "; ".join(" ".join(error.split()) for error in errors)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read --authentication-config {path!r}: {exc.strerror}") from None


_COMPILER: Compiler | None = None


def _compiler() -> Compiler:
    global _COMPILER  # noqa: PLW0603 - one CEL environment per process, built on first use
    if _COMPILER is None:
        _COMPILER = Compiler()
    return _COMPILER
