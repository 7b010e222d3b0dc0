"""Client request headers + verified identity -> the headers we send to kube-apiserver.

Rules (each has a named test):
- Everything that could carry a credential or an identity is removed from the client's headers:
  ``Authorization``, ``Proxy-Authorization``, every ``Impersonate-*``, every ``X-Remote-*`` (request-header
  authentication), and the WebSocket bearer-token subprotocol. So are hop-by-hop headers (RFC 9110 §7.6.1,
  including those the ``Connection`` header names), ``Host`` and ``Expect`` (we answer 100-continue).
- The identity goes out as ``Impersonate-User``, ``Impersonate-Uid``, one ``Impersonate-Group`` per group
  plus ``system:authenticated``, and ``Impersonate-Extra-<key>`` per value, keys escaped as client-go does.
- Then ``check_no_client_credentials`` looks again, written differently from the filter, so a bug in one of
  them fails closed instead of letting a client-chosen identity through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX
from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.http1.headers import HOP_BY_HOP, Headers, comma_tokens, connection_options

IMPERSONATE_PREFIX: Final = b"impersonate-"
REMOTE_PREFIX: Final = b"x-remote-"
REMOTE_CLIENT_IP_EXTRA: Final = "remote-client-ip"
ANONYMOUS: Final = "system:anonymous"
SYSTEM_UNAUTHENTICATED: Final = "system:unauthenticated"
_ALWAYS_DROPPED: Final = HOP_BY_HOP | {b"host", b"authorization", b"expect", b"x-forwarded-for"}
# RFC 9110 §5.6.2 tchar; client-go's headerKeyEscape keeps these bytes (except '%') and %-escapes the rest.
_TCHAR: Final = frozenset(b"!#$&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class CredentialLeak(Exception):
    """A client-supplied credential or identity header survived filtering. A bug: the request fails."""


def escape_extra_key(key: str) -> bytes:
    """``Impersonate-Extra-`` key escaping, byte for byte as client-go's ``headerKeyEscape``."""
    return b"".join(bytes((b,)) if b in _TCHAR else b"%%%02X" % b for b in key.encode())


def identity_headers(user: UserInfo, extra: Mapping[str, Iterable[str]] | None = None) -> Headers:
    out: Headers = [(b"impersonate-user", user.username.encode())]
    if user.uid:
        out.append((b"impersonate-uid", user.uid.encode()))
    for group in user.groups:
        out.append((b"impersonate-group", group.encode()))
    # kube-apiserver's rule for impersonated users: anonymous is unauthenticated, everyone else authenticated
    if user.username == ANONYMOUS:
        if SYSTEM_UNAUTHENTICATED not in user.groups:
            out.append((b"impersonate-group", SYSTEM_UNAUTHENTICATED.encode()))
    elif SYSTEM_AUTHENTICATED not in user.groups and SYSTEM_UNAUTHENTICATED not in user.groups:
        out.append((b"impersonate-group", SYSTEM_AUTHENTICATED.encode()))
    for extras in (user.extra, extra or {}):
        for key, values in extras.items():
            name = b"impersonate-extra-" + escape_extra_key(key)
            out.extend((name, v.encode()) for v in values)
    return out


def _client_headers(headers: Headers, *, upgrade: bool) -> Headers:
    dropped = connection_options(headers)
    out: Headers = []
    for name, value in headers:
        if name in _ALWAYS_DROPPED or name in dropped:
            continue
        if name.startswith(IMPERSONATE_PREFIX) or name.startswith(REMOTE_PREFIX):
            continue
        if name == b"sec-websocket-protocol":
            kept = [p for p in comma_tokens([value]) if not p.startswith(WS_TOKEN_PREFIX)]
            if not kept:
                continue
            value = b", ".join(kept)
        out.append((name, value))
    if upgrade:
        out.append((b"connection", b"Upgrade"))
        out.extend((b"upgrade", v) for n, v in headers if n == b"upgrade")
    return out


def check_no_client_credentials(headers: Headers) -> None:
    for name, value in headers:
        lowered = name.lower()
        if (
            lowered in (b"authorization", b"proxy-authorization")
            or lowered[:12] == b"impersonate-"
            or lowered[:9] == b"x-remote-"
            or (lowered == b"sec-websocket-protocol" and WS_TOKEN_PREFIX in value)
        ):
            raise CredentialLeak(f"client header {name.decode('latin-1')!r} survived filtering")


@dataclass(frozen=True, slots=True)
class Rewriter:
    """Static parts of every outbound request: where it goes and the extras every request carries."""

    upstream_host: bytes
    static_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    client_ip_extra: bool = False

    def upstream_headers(
        self,
        headers: Headers,
        user: UserInfo,
        *,
        peer_ip: str,
        upgrade: bool,
        chunked: bool,
    ) -> Headers:
        """The request headers for kube-apiserver, without the proxy's own Authorization."""
        out = _client_headers(headers, upgrade=upgrade)
        check_no_client_credentials(out)
        out.append((b"host", self.upstream_host))
        forwarded = [v for n, v in headers if n == b"x-forwarded-for"]
        forwarded.append(peer_ip.encode())
        out.append((b"x-forwarded-for", b", ".join(forwarded)))
        if chunked:
            out.append((b"transfer-encoding", b"chunked"))
        extra: dict[str, tuple[str, ...]] = dict(self.static_extra)
        if self.client_ip_extra:
            extra[REMOTE_CLIENT_IP_EXTRA] = (peer_ip,)
        out += identity_headers(user, extra)
        return out

    def passthrough_headers(self, headers: Headers, *, peer_ip: str, upgrade: bool, chunked: bool) -> Headers:
        """The caller's own request, credentials and impersonation headers included, for kube-apiserver to
        authenticate and authorize itself (token passthrough, --disable-impersonation)."""
        dropped = connection_options(headers)
        out: Headers = [
            (n, v)
            for n, v in headers
            if n not in _ALWAYS_DROPPED and n not in dropped and not n.startswith(REMOTE_PREFIX)
        ]
        out += [(b"authorization", v) for n, v in headers if n == b"authorization"]
        if upgrade:
            out.append((b"connection", b"Upgrade"))
            out.extend((b"upgrade", v) for n, v in headers if n == b"upgrade")
        out.append((b"host", self.upstream_host))
        forwarded = [v for n, v in headers if n == b"x-forwarded-for"]
        forwarded.append(peer_ip.encode())
        out.append((b"x-forwarded-for", b", ".join(forwarded)))
        if chunked:
            out.append((b"transfer-encoding", b"chunked"))
        return out
