"""Identity values in the one form kube-apiserver will read them: anything it would read differently is refused.

Every username, UID, group and extra the proxy forwards becomes an ``Impersonate-*`` header value, and Go's
HTTP server (kube-apiserver) trims leading and trailing spaces and tabs from header values
(``textproto.TrimString``). So ``" system:masters"`` is checked here as one string and read there as another:
it would pass the refusal of ``system:`` identities and arrive as ``system:masters``. Values that change on
the way are therefore refused, never repaired: with leading or trailing whitespace, with control
characters (a header value cannot carry them; kube-apiserver refuses them too), or that are not Unicode
text (a lone surrogate from a JSON claim cannot be encoded at all). Extra keys also travel in a header
*name*, which kube-apiserver lower-cases before it %-unescapes them; ``impersonation.escape_extra_key``
keeps every key intact through that.

Pure: strings in, a reason out, with the value quoted and bounded (``authn.quoting``: it may come from a
token). The refusal of ``system:`` identities and every prefix rule run after this check, on the very
string kube-apiserver will see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authn.quoting import quoted

# C0 controls and DEL: not allowed in a header value (HTAB is, but Go would trim it at the ends, and
# inside a name it only invites confusion in logs and RBAC bindings).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# What Go's textproto.TrimString removes from both ends of a header value (CR and LF are controls).
_GO_TRIMMED: Final = " \t"


def value_problem(value: str) -> str | None:
    """Why kube-apiserver would not read ``value`` exactly as given, or None."""
    # This runs for every value of every request: printable text (no control, no surrogate, no tab) not
    # starting or ending with a space is the common case, and str.isprintable is a single C pass.
    if value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return None
    if _CONTROL.search(value):
        return "contains control characters"
    if value and (value[0] in _GO_TRIMMED or value[-1] in _GO_TRIMMED):
        return "has leading or trailing whitespace"
    if not _is_unicode_text(value):
        return "is not valid Unicode text"
    return None  # printable after all for Go: C1 controls, separators and other non-printable characters


def _is_unicode_text(value: str) -> bool:
    """False for a lone surrogate (a JSON claim can carry one): it cannot be encoded at all."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def extra_key_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    return value_problem(key)


# The extras in which the proxy records who asked for a ``kubectl --as`` (``authz.review.target_user``):
# ``originaluser.jetstack.io-user`` and its siblings, as the Tremolo proxy names them. Only the proxy may
# write them, so no client request, static extra or claim mapping may name a key in this namespace.
RESERVED_EXTRA_PREFIX: Final = "originaluser."


def reserved_extra_key(key: str) -> bool:
    """A key of the proxy's own record of who asked, in any case (kube-apiserver lower-cases header keys)."""
    return key[: len(RESERVED_EXTRA_PREFIX)].lower() == RESERVED_EXTRA_PREFIX


def user_problem(user: UserInfo, what: str = "") -> str | None:
    """The first identity field of ``user`` that kube-apiserver would read differently, as a sentence."""
    fields: list[tuple[str, Iterable[str]]] = [
        ("username", (user.username,)),
        ("uid", (user.uid,)),
        ("group", user.groups),
    ]
    for name, values in fields:
        for value in values:
            problem = value_problem(value)
            if problem is not None:
                return f"{what}{name} {quoted(value)} {problem}"
    return extra_problem(user.extra, what)


def extra_problem(extra: Mapping[str, Iterable[str]], what: str = "") -> str | None:
    for key, values in extra.items():
        problem = extra_key_problem(key)
        if problem is not None:
            return f"{what}extra key {quoted(key)} {problem}"
        for value in values:
            problem = value_problem(value)
            if problem is not None:
                return f"{what}extra {quoted(key)} value {quoted(value)} {problem}"
    return None
