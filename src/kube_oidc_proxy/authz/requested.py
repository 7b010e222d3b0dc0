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
- Refused too, where kube-apiserver has no rule (400, each check costing nothing but the parse):
  more than ``MAX_IMPERSONATED_VALUES`` groups, extra values and uid in one request (each is one
  SubjectAccessReview); a value or extra key longer than ``MAX_VALUE_BYTES``; and an extra key in the
  proxy's own ``originaluser.`` namespace, in any spelling that reads as one (``OriginalUser.…``,
  ``originaluser%2Ejetstack.io-user``): those extras are the proxy's record of who asked.
Pure: headers in, a request or an error out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.identity import extra_key_problem, reserved_extra_key, value_problem

EXTRA_PREFIX = b"impersonate-extra-"
_MALFORMED_ESCAPE: Final = re.compile(r"%(?![0-9a-fA-F]{2})")
# kubectl users pass a handful (--as-group, --as-user-extra, typed by hand); a tool that forwards a
# directory user's group list a few dozen. Each value costs one SubjectAccessReview the first time, so the
# bound is what one request may cost: 64 is a quarter of the 256 header lines a request head may carry.
MAX_IMPERSONATED_VALUES: Final = 64
# Longer than any username, group (an Active Directory DN), uid or extra seen in practice; a value that
# needs more is not a name. It bounds what one review, log line or audit event repeats from a header.
MAX_VALUE_BYTES: Final = 4096


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


def _check_length(name: bytes, value: bytes) -> None:
    """Before anything is decoded or quoted back: a refusal names the header, not the value."""
    if len(value) > MAX_VALUE_BYTES:
        raise BadImpersonation(f"{name.decode('latin-1')[:64]} value is longer than {MAX_VALUE_BYTES} bytes")
    if len(name) - len(EXTRA_PREFIX) > MAX_VALUE_BYTES:
        raise BadImpersonation(f"impersonated extra key is longer than {MAX_VALUE_BYTES} bytes")


def requested_impersonation(headers: Headers) -> ImpersonationRequest | None:
    """The requested identity, None when the request asks for none; raises ``BadImpersonation``."""
    users: list[str] = []
    uids: list[str] = []
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    seen = False
    values = 0  # groups, extra values and uids: one review each
    for name, value in headers:
        if not name.startswith(b"impersonate-"):
            continue
        seen = True
        _check_length(name, value)
        if name != b"impersonate-user":
            values += 1
            if values > MAX_IMPERSONATED_VALUES:
                raise BadImpersonation(
                    f"too many impersonated values: at most {MAX_IMPERSONATED_VALUES} groups, extra values "
                    "and uid may be asked for in one request"
                )
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
            if reserved_extra_key(key):
                raise BadImpersonation(
                    f"impersonated extra key {key!r} is reserved: the proxy records who asked in "
                    "originaluser.jetstack.io-* extras"
                )
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
