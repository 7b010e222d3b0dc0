"""A client request + verified identity -> the headers we send to kube-apiserver.

Rules (each has a named test):
- The proxy owns the request's framing, routing, credentials, identity, origin and audit ID
  (``http1.headers.PROXY_OWNED``): every client spelling of those headers is removed (case and ``_`` for
  ``-``, which a downstream layer could map onto the real name), and the proxy sets its own from what its
  parser read: ``Content-Length`` or ``Transfer-Encoding: chunked`` for exactly the body it will send,
  ``Host``, ``X-Forwarded-For`` (``clientip``), and the caller's identity. So are ``X-Remote-*``
  (request-header authentication), hop-by-hop headers (RFC 9110 §7.6.1, including those ``Connection``
  names: the parser refused any that name a proxy-owned header) and ``Expect`` (we answer 100-continue).
- The identity goes out as ``Impersonate-User``, ``Impersonate-Uid``, one ``Impersonate-Group`` per group
  plus ``system:authenticated``, and ``Impersonate-Extra-<key>`` per value, each value checked in the form
  kube-apiserver will read it (``identity``), keys escaped so that kube-apiserver reads them back intact.
- Then ``check_no_client_credentials`` looks again, written differently from the filter, so a bug in one of
  them fails closed instead of letting a client-chosen identity through.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX
from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.headers import (
    HOP_BY_HOP,
    PROXY_OWNED,
    PROXY_OWNED_PREFIXES,
    TCHAR,
    Headers,
    comma_tokens,
    connection_options,
    is_proxy_owned,
)
from kube_oidc_proxy.identity import extra_problem, user_problem

IMPERSONATE_PREFIX: Final = b"impersonate-"
REMOTE_CLIENT_IP_EXTRA: Final = "remote-client-ip"
ANONYMOUS: Final = "system:anonymous"
SYSTEM_UNAUTHENTICATED: Final = "system:unauthenticated"
IDENTITY_MEMO_SIZE: Final = 4096
IDENTITY_MEMO_BYTES: Final = 16 * 1024 * 1024  # header bytes held at most (a user may carry thousands of groups)
_ALWAYS_DROPPED: Final = HOP_BY_HOP | {b"expect"} | (PROXY_OWNED - {b"sec-websocket-protocol"})
# Token characters but '%' and upper-case letters. client-go's headerKeyEscape keeps upper-case letters too,
# but kube-apiserver lower-cases the header name before it %-unescapes the key, so "Key" would arrive as
# "key": escaping them ("%4Bey") keeps every key exactly as checked. Lower-case keys escape as in client-go.
_KEPT_IN_KEYS: Final = frozenset(b for b in TCHAR if b != ord("%") and not ord("A") <= b <= ord("Z"))


class CredentialLeak(Exception):
    """A client-supplied credential or identity header survived filtering. A bug: the request fails."""


class UnforwardableIdentity(Exception):
    """An identity value kube-apiserver would read differently from what the proxy checked."""


@functools.lru_cache(maxsize=1024)  # a few keys recur on every request (credential-id, the static extras)
def escape_extra_key(key: str) -> bytes:
    """``Impersonate-Extra-`` key escaping: client-go's ``headerKeyEscape``, plus upper-case letters."""
    return b"".join(bytes((b,)) if b in _KEPT_IN_KEYS else b"%%%02X" % b for b in key.encode())


def identity_headers(user: UserInfo, extra: Mapping[str, Iterable[str]] | None = None) -> Headers:
    """The ``Impersonate-*`` headers for ``user``; raises ``UnforwardableIdentity`` rather than send a value
    kube-apiserver would read differently (the authenticators refuse those earlier, with their own words)."""
    problem = user_problem(user) or (extra_problem(extra) if extra else None)
    if problem is not None:
        raise UnforwardableIdentity(problem)
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


def _end_to_end(head: RequestHead, *, keep_ws_token: bool) -> Headers:
    """The client's headers that are the client's to send: no hop-by-hop header, no spelling of a header the
    proxy owns (the WebSocket subprotocols come back without the token, unless ``keep_ws_token``)."""
    dropped = connection_options(head.headers)
    out: Headers = []
    for name, value in head.headers:
        if name in _ALWAYS_DROPPED or name in dropped:
            continue
        if name == b"sec-websocket-protocol":
            if not keep_ws_token:
                kept = [p for p in comma_tokens([value]) if not p.startswith(WS_TOKEN_PREFIX)]
                if kept:
                    out.append((name, b", ".join(kept)))
                continue
        elif (b"_" in name or name.startswith(PROXY_OWNED_PREFIXES)) and is_proxy_owned(name):
            continue  # (the exact spellings are in _ALWAYS_DROPPED: this is for the others)
        out.append((name, value))
    return out


def framing_headers(head: RequestHead) -> Headers:
    """Exactly the body the proxy will send: the length its parser read, or chunks it writes itself."""
    if head.framing == "chunked":
        return [(b"transfer-encoding", b"chunked")]
    if head.content_length is not None:
        return [(b"content-length", b"%d" % head.content_length)]
    return []


def _upgrade_headers(head: RequestHead) -> Headers:
    if not head.upgrade:
        return []
    return [(b"connection", b"Upgrade"), *((b"upgrade", v) for n, v in head.headers if n == b"upgrade")]


def check_no_client_credentials(headers: Headers) -> None:
    """Raise ``CredentialLeak`` if a client credential, identity or framing header is still there."""
    for name, value in headers:
        lowered = name.lower().replace(b"_", b"-")
        if (
            lowered in (b"authorization", b"proxy-authorization", b"content-length", b"transfer-encoding", b"host")
            or lowered[:12] == b"impersonate-"
            or lowered[:9] == b"x-remote-"
            or (lowered == b"sec-websocket-protocol" and WS_TOKEN_PREFIX in value)
        ):
            raise CredentialLeak(f"client header {name.decode('latin-1')!r} survived filtering")


class _IdentityMemo:
    """The identity headers of recently seen verified users, by object: the token cache hands out the same
    UserInfo for every request with one token, so they are checked and built once. Bounded in entries and
    in bytes (a user may carry thousands of groups), then cleared. Only for such long-lived users: a
    ``kubectl --as`` target is made anew for every request."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[UserInfo, Headers]] = {}
        self.bytes = 0

    def get(self, user: UserInfo) -> Headers | None:
        known = self.entries.get(id(user))
        return known[1] if known is not None and known[0] is user else None

    def put(self, user: UserInfo, headers: Headers) -> None:
        size = sum(len(name) + len(value) for name, value in headers)
        if len(self.entries) >= IDENTITY_MEMO_SIZE or self.bytes + size > IDENTITY_MEMO_BYTES:
            self.entries.clear()
            self.bytes = 0
        self.entries[id(user)] = (user, headers)  # holding the user keeps its id from being reused
        self.bytes += size


@dataclass(frozen=True, slots=True)
class Rewriter:
    """Static parts of every outbound request: where it goes and the extras every request carries."""

    upstream_host: bytes
    static_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    client_ip_extra: bool = False
    _identities: _IdentityMemo = field(default_factory=_IdentityMemo, compare=False, repr=False)

    def _identity(self, user: UserInfo, *, remember: bool) -> Headers:
        known = self._identities.get(user)
        if known is not None:
            return known
        headers = identity_headers(user, self.static_extra)
        if remember:
            self._identities.put(user, headers)
        return headers

    def _proxy_set(self, head: RequestHead, origin: Origin) -> Headers:
        out: Headers = [
            *_upgrade_headers(head),
            (b"host", self.upstream_host),
            (b"x-forwarded-for", origin.upstream_forwarded_for),
        ]
        if origin.real_ip:
            out.append((b"x-real-ip", origin.real_ip.encode()))
        return out + framing_headers(head)

    def upstream_headers(self, head: RequestHead, user: UserInfo, origin: Origin, *, remember: bool = True) -> Headers:
        """The request headers for kube-apiserver, without the proxy's own Authorization and Audit-ID.
        ``remember``: ``user`` is an object that comes back (the token cache's), worth remembering."""
        out = _end_to_end(head, keep_ws_token=False)
        check_no_client_credentials(out)
        out += self._proxy_set(head, origin)
        out += self._identity(user, remember=remember)
        if self.client_ip_extra:  # an address the proxy parsed or was given by the socket
            out.append((b"impersonate-extra-" + escape_extra_key(REMOTE_CLIENT_IP_EXTRA), origin.client_ip.encode()))
        return out

    def passthrough_headers(self, head: RequestHead, origin: Origin) -> Headers:
        """The caller's own request, its credential and impersonation headers included (exactly as
        kube-apiserver reads them), for kube-apiserver to authenticate and authorize itself (token
        passthrough, --disable-impersonation)."""
        out = _end_to_end(head, keep_ws_token=True)
        out += [(n, v) for n, v in head.headers if n == b"authorization" or n.startswith(IMPERSONATE_PREFIX)]
        return out + self._proxy_set(head, origin)
