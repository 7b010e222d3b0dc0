"""The two identities a request can have towards kube-apiserver, each with its own connections.

- ``AsProxy``: connections that authenticate as the proxy, with its client certificate in the TLS handshake
  and its bearer token on each request. Only for requests whose identity the proxy decided itself
  (``Impersonate-*`` headers it built) and for its own reviews.
- ``AsCaller``: connections made from the same address and trust roots but with no credential at all, for
  requests that carry the caller's own token (``--token-passthrough``, ``--disable-impersonation``).

They are two types with two pools, not a flag on one, because mixing them is an escalation: kube-apiserver
authenticates a client certificate before a bearer token, so a caller's request on the proxy's connection
would run as the proxy, and the caller's own ``Impersonate-*`` headers would be honoured with the proxy's
right to impersonate anyone. On an ``AsCaller`` connection kube-apiserver judges those headers with the
caller's own credential, as if the proxy were not there.
"""

from __future__ import annotations

import ssl
from dataclasses import replace

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.kube.credentials import BearerToken
from kube_oidc_proxy.kube.target import UpstreamTarget
from kube_oidc_proxy.server.tls import client_context
from kube_oidc_proxy.server.upstream import MAX_IDLE, UpstreamPool
from kube_oidc_proxy.server.upstream_h2 import H2Pool


def _context(target: UpstreamTarget, alpn: tuple[str, ...]) -> ssl.SSLContext:
    return client_context(
        target.ca_pem,
        insecure=target.insecure,
        client_cert_pem=target.client_cert_pem,
        client_key_pem=target.client_key_pem,
        alpn=alpn,
    )


class _Connections:
    """An HTTP/1.1 pool (keeping at most ``max_idle`` idle connections) and, over TLS, an HTTP/2 pool for
    streams, all made from one target."""

    def __init__(self, target: UpstreamTarget, max_idle: int = MAX_IDLE) -> None:
        self.target = target
        self.pool = UpstreamPool(target, _context(target, ("http/1.1",)), max_idle)
        self.h2 = H2Pool(target, _context(target, ("h2", "http/1.1"))) if target.scheme == "https" else None

    def close(self) -> None:
        self.pool.close()
        if self.h2 is not None:
            self.h2.close()


class AsProxy(_Connections):
    """Requests sent as the proxy: its client certificate (from the target) and its bearer token."""

    def __init__(self, target: UpstreamTarget, credentials: BearerToken, max_idle: int = MAX_IDLE) -> None:
        super().__init__(target, max_idle)
        self.credentials = credentials

    def credential_headers(self) -> Headers:
        authorization = self.credentials.authorization()
        return [] if authorization is None else [(b"authorization", authorization)]

    def credential_refused(self) -> None:
        """kube-apiserver answered 401 to the proxy's token: read it again (rate-limited)."""
        self.credentials.unauthorized()


class AsCaller(_Connections):
    """Requests sent with the caller's own credential: no client certificate, no token of the proxy's."""

    def __init__(self, target: UpstreamTarget, max_idle: int = MAX_IDLE) -> None:
        super().__init__(without_credentials(target), max_idle)

    def credential_headers(self) -> Headers:
        return []

    def credential_refused(self) -> None:
        """A 401 to the caller's token is the caller's to handle: nothing of the proxy's to refresh."""


def without_credentials(target: UpstreamTarget) -> UpstreamTarget:
    """The same kube-apiserver, reached and verified the same way, with nothing that authenticates."""
    return replace(target, client_cert_pem=None, client_key_pem=None, token="", token_file="", exec_config=None)


Upstream = AsProxy | AsCaller
