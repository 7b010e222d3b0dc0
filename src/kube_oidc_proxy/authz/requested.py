"""The identity a caller asks to act as, read from its ``Impersonate-*`` headers, under kube-apiserver's rules
(k8s.io/apiserver pkg/endpoints/filters/impersonation):

- ``Impersonate-User`` (one), ``Impersonate-Uid`` (one), ``Impersonate-Group`` (each line one group),
  ``Impersonate-Extra-<key>`` (each line one value; the key is lower-cased and %-unescaped, as client-go
  escapes it; a key with a malformed escape is kept whole, not unescaped at all, as kube-apiserver keeps it;
  an escape of something that is not UTF-8 is refused).
- Values are taken exactly as kube-apiserver reads them (trimmed by the parser as Go trims them); a value
  that would still change on the way (``identity.value_problem``) or is not UTF-8 is refused (400).
- Groups, a uid or extras without a user are a bad request (400), as in kube-apiserver.
- An ``Impersonate-`` header of any other name is refused (400): forwarding it unchecked would let the
  caller's words reach the API server under the proxy's authority.
Pure: headers in, a request or an error out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.identity import extra_key_problem, value_problem

EXTRA_PREFIX = b"impersonate-extra-"
_MALFORMED_ESCAPE: Final = re.compile(r"%(?![0-9a-fA-F]{2})")


class BadImpersonation(ValueError):
    """The impersonation headers do not make sense (400)."""


@dataclass(frozen=True, slots=True)
class ImpersonationRequest:
    user: str
    uid: str
    groups: tuple[str, ...]
    extra: dict[str, tuple[str, ...]]


def unescape_extra_key(escaped: bytes) -> str:
    key = escaped.decode("latin-1").lower()
    if _MALFORMED_ESCAPE.search(key):
        return key  # kube-apiserver's unescapeExtraKey: url.PathUnescape failed, so the key as it is, whole
    try:
        return unquote(key, errors="strict")
    except UnicodeDecodeError:
        raise BadImpersonation(f"impersonated extra key {key!r} is not %-escaped UTF-8") from None


def _text(name: bytes, value: bytes) -> str:
    """A requested value exactly as kube-apiserver reads it (our parser trimmed it as Go does), or a refusal."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadImpersonation(f"{name.decode('latin-1')} is not UTF-8") from None
    problem = value_problem(text)
    if problem is not None:
        raise BadImpersonation(f"{name.decode('latin-1')} value {text!r} {problem}")
    return text


def requested_impersonation(headers: Headers) -> ImpersonationRequest | None:
    """The requested identity, None when the request asks for none; raises ``BadImpersonation``."""
    users: list[str] = []
    uids: list[str] = []
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    seen = False
    for name, value in headers:
        if not name.startswith(b"impersonate-"):
            continue
        seen = True
        text = _text(name, value)
        if name == b"impersonate-user":
            users.append(text)
        elif name == b"impersonate-uid":
            uids.append(text)
        elif name == b"impersonate-group":
            groups.append(text)
        elif name.startswith(EXTRA_PREFIX) and len(name) > len(EXTRA_PREFIX):
            key = unescape_extra_key(name[len(EXTRA_PREFIX) :])
            problem = extra_key_problem(key)
            if problem is not None:
                raise BadImpersonation(f"impersonated extra key {key!r} {problem}")
            extra.setdefault(key, []).append(text)
        else:
            raise BadImpersonation(f"unknown impersonation header {name.decode('latin-1')!r}")
    if not seen:
        return None
    if not users or not users[0]:
        if groups:
            raise BadImpersonation(f"requested {groups} without impersonating a user")
        if uids:
            raise BadImpersonation(f"requested uid {uids[0]!r} without impersonating a user")
        raise BadImpersonation(f"requested {sorted(extra)} without impersonating a user")
    if len(users) > 1 or len(uids) > 1:
        raise BadImpersonation("only one Impersonate-User and one Impersonate-Uid may be given")
    return ImpersonationRequest(
        user=users[0],
        uid=uids[0] if uids else "",
        groups=tuple(groups),
        extra={k: tuple(v) for k, v in extra.items()},
    )
