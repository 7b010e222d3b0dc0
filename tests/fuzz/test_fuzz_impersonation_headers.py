"""Fuzz target: ``kubectl --as`` headers, read as kube-apiserver reads them, and the identity sent on for them.

``requested_impersonation`` gets the ``Impersonate-*`` headers any client could send (as the parser hands
them over: lower-case names): every kind of extra key (%-escapes valid, malformed, of invalid UTF-8, of
upper-case letters, of line separators), values with spaces around, controls, invalid UTF-8, ``system:``
names. What must hold:

- it returns None (no ``Impersonate-`` header at all), raises ``BadImpersonation``, or returns a request
  whose every value passes ``identity.value_problem``;
- an accepted request is the one kube-apiserver would read from the same headers (lower-cased name, then
  ``url.PathUnescape`` of the key, which keeps the whole key when an escape is malformed), so the
  SubjectAccessReview is about what the client asked for;
- what the proxy then sends (``target_user``, ``identity_headers`` with ``escape_extra_key``) is read back by
  kube-apiserver as exactly the identity that was checked, ``system:authenticated`` added, through header
  lines that can be written at all.

A second target puts the checker between the two, against a kube-apiserver whose answers are hostile
(``"false"``, ``1``, ``null``, ``denied`` beside ``allowed``, a ``status`` that is not an object): no identity
is forwarded unless every value kube-apiserver reads from the proxy's request was reviewed and answered
with a JSON ``true``; its ``originaluser.*`` extras are the proxy's record of the caller and nothing
else; and a refused request asked nothing after the value it was refused for.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authz.checker import ImpersonationChecker
from kube_oidc_proxy.authz.requested import BadImpersonation, requested_impersonation
from kube_oidc_proxy.authz.review import allowed_by, service_account, target_user
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.identity import value_problem
from kube_oidc_proxy.impersonation import identity_headers
from tests.fuzz.runner import fuzz

CALLER: Final = UserInfo("alice", uid="u-1", groups=("dev",), extra={"acme.com/team": ("blue",)})
EXTRA_PREFIX: Final = b"impersonate-extra-"
TOKEN_CHARS: Final = "!#$&'*+-.^_`|~" + string.ascii_letters + string.digits  # RFC 9110 tchar, but '%'

KEY_PIECES: Final = [
    "scopes",
    "acme.com",
    "%2F",
    "%2f",
    "%",
    "%z",
    "%zz",
    "%4",
    "%C3%A9",
    "%c3%a9",
    "%C3",
    "%FF",
    "%00",
    "%20",
    "%0A",
    "%7F",
    "%E2%80%A8",
    "%ED%A0%80",
    "%F0%9F%98%80",
    "%25",
    "%41",
    "Key",
    "system:",
    "_",
    "originaluser.jetstack.io-user",
    "originaluser%2E",
    "OriginalUser.",
]
CLEAN_VALUES: Final = [
    b"bob",
    b"dev",
    b"system:masters",
    b"system:serviceaccount:kube-system:default",
    b"a b",
    b"\xc3\xa9",
]
HOSTILE_VALUES: Final = [b" bob", b"bob ", b"b\tob", b"\xff", b"\xe2\x80\xa8", b"\xed\xa0\x80", b"", b"a,b", b"b\x00ob"]
ROLE_NAMES: Final = [b"impersonate-user", b"impersonate-group", b"impersonate-group", b"impersonate-uid"]
ODD_NAMES: Final = [b"impersonate-other", b"impersonate-", b"impersonate-extra-", b"accept", b"impersonate-user"]

keys = st.lists(
    st.one_of(st.sampled_from(KEY_PIECES), st.text(TOKEN_CHARS, min_size=1, max_size=3)), min_size=1, max_size=4
)
extra_names = keys.map(lambda pieces: EXTRA_PREFIX + "".join(pieces).lower().encode())  # the parser lower-cases
hostile_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.binary(max_size=8),
    st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
PERCENT: Final = st.integers(min_value=0, max_value=99)
# Mostly headers kube-apiserver would accept, so that most requests get through to the round trip.
names = st.builds(
    lambda n, extra, role, odd: extra if n < 55 else role if n < 92 else odd,
    PERCENT,
    extra_names,
    st.sampled_from(ROLE_NAMES),
    st.sampled_from(ODD_NAMES),
)
header_values = st.builds(
    lambda n, clean, hostile: clean if n < 85 else hostile, PERCENT, st.sampled_from(CLEAN_VALUES), hostile_values
)
headers = st.builds(
    lambda n, user, more: [(b"impersonate-user", user), *more] if n < 85 else more,
    PERCENT,
    header_values,
    st.lists(st.tuples(names, header_values), max_size=5),
)


# -- kube-apiserver's side (k8s.io/apiserver pkg/endpoints/filters/impersonation.go) ----------------------------

_MALFORMED_ESCAPE: Final = re.compile(rb"%(?![0-9a-fA-F]{2})")


def path_unescape(key: bytes) -> bytes:
    """Go's url.PathUnescape, and unescapeExtraKey's use of it: on a malformed escape, the key as it is."""
    if _MALFORMED_ESCAPE.search(key):
        return key
    return re.sub(rb"%([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), key)


@dataclass
class Read:
    users: list[bytes] = field(default_factory=list)
    uids: list[bytes] = field(default_factory=list)
    groups: list[bytes] = field(default_factory=list)
    extra: dict[bytes, list[bytes]] = field(default_factory=dict)


def apiserver_reads(headers: Headers) -> Read:
    """The impersonation a header list asks kube-apiserver for. Go trims spaces and tabs around values."""
    read = Read()
    for name, value in headers:
        name, value = name.lower(), value.strip(b" \t")
        if name == b"impersonate-user":
            read.users.append(value)
        elif name == b"impersonate-uid":
            read.uids.append(value)
        elif name == b"impersonate-group":
            read.groups.append(value)
        elif name.startswith(EXTRA_PREFIX):
            read.extra.setdefault(path_unescape(name[len(EXTRA_PREFIX) :]), []).append(value)
    return read


def writable(headers: Headers) -> bool:
    """Every line can be written: a token name, a value without CR, LF or NUL."""
    return all(
        re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", n) and not re.search(rb"[\r\n\x00]", v) for n, v in headers
    )


@fuzz(headers=headers)
def test_an_accepted_impersonation_is_what_kube_apiserver_reads_before_and_after_the_proxy(headers: Headers) -> None:
    try:
        requested = requested_impersonation(headers)
    except BadImpersonation as exc:
        assert str(exc)
        return
    if not any(name.startswith(b"impersonate-") for name, _ in headers):
        assert requested is None
        return
    assert requested is not None and requested.user
    values = [requested.user, requested.uid, *requested.groups, *requested.extra]
    values += [v for vs in requested.extra.values() for v in vs]
    assert all(value_problem(v) is None for v in values), requested

    # what the client asked kube-apiserver's rules for
    asked = apiserver_reads(headers)
    assert asked.users[:1] == [requested.user.encode()]  # Header.Get: the first
    assert (asked.uids[:1] or [b""]) == [requested.uid.encode()]  # the first, and an empty one is no uid
    assert asked.groups == [g.encode() for g in requested.groups]
    assert asked.extra == {k.encode(): [v.encode() for v in vs] for k, vs in requested.extra.items()}

    # what kube-apiserver reads from the proxy's request: the identity that was checked, nothing else
    target = target_user(requested, CALLER)
    out = identity_headers(target)
    assert writable(out)
    sent = apiserver_reads(out)
    assert sent.users == [target.username.encode()]
    assert sent.uids == ([target.uid.encode()] if target.uid else [])
    assert sent.groups[: len(target.groups)] == [g.encode() for g in target.groups]
    assert set(sent.groups[len(target.groups) :]) <= {b"system:authenticated", b"system:unauthenticated"}
    assert sent.extra == {k.encode(): [v.encode() for v in vs] for k, vs in target.extra.items()}


# -- the checker between them, against hostile review answers ------------------------------------------------

ALLOWED: Final = {"allowed": True}
HOSTILE_STATUSES: Final = [
    {"allowed": False},
    {"allowed": "false"},
    {"allowed": "true"},
    {"allowed": 1},
    {"allowed": None},
    {"allowed": [True]},
    {},
    {"allowed": True, "denied": True},
    {"allowed": True, "denied": "false"},
    {"allowed": True, "denied": None},
    "allowed",
    None,
    [ALLOWED],
]
# Mostly a true allow, so that most requests get through to the identity they ask for.
statuses = st.builds(lambda n, hostile: ALLOWED if n < 80 else hostile, PERCENT, st.sampled_from(HOSTILE_STATUSES)).map(
    lambda status: dict(status) if isinstance(status, dict) else status
)
LOOP: Final = asyncio.new_event_loop()

Reviewed = tuple[str, str, str, str]  # resource, subresource, namespace, name: one SubjectAccessReview's value


class HostileKube:
    """Answers each review with the next status drawn; records what was asked and what it answered."""

    def __init__(self, statuses: list[Any]) -> None:
        self.statuses = statuses
        self.asked: list[Reviewed] = []
        self.answered: dict[Reviewed, Any] = {}

    async def subject_access_review(self, body: dict[str, Any], *, caller: str, timeout: float) -> bool:
        attributes = body["spec"]["resourceAttributes"]
        asked = (attributes["resource"], attributes["subresource"], attributes["namespace"], attributes["name"])
        status = self.statuses[len(self.asked) % len(self.statuses)]
        self.asked.append(asked)
        self.answered[asked] = status
        return allowed_by({"kind": "SubjectAccessReview", "status": status})  # as KubeClient reads the answer


def json_true_allow(status: Any) -> bool:
    """Written apart from ``allowed_by``: in JSON, allowed is ``true`` and denied absent or ``false`` (Go's
    decoder refuses any other type there, and kube-apiserver refuses the impersonation on any error)."""
    if not isinstance(status, dict):
        return False
    return json.dumps(status.get("allowed")) == "true" and json.dumps(status.get("denied", False)) == "false"


def reviewed_values(read: Read) -> list[Reviewed]:
    """The values kube-apiserver reads from the proxy's request, as the reviews that must have allowed them
    (the groups kube-apiserver itself gives a service account, and the proxy's own record, need none)."""
    user = read.users[0].decode()
    account = service_account(user)
    values: list[Reviewed] = [("serviceaccounts", "", account[0], account[1]) if account else ("users", "", "", user)]
    given = {b"system:authenticated"} | (
        {b"system:serviceaccounts", f"system:serviceaccounts:{account[0]}".encode()} if account else set()
    )
    values += [("groups", "", "", g.decode()) for g in read.groups if g not in given]
    values += [("uids", "", "", u.decode()) for u in read.uids]
    for key, extra_values in read.extra.items():
        if not key.startswith(b"originaluser."):
            values += [("userextras", key.decode(), "", v.decode()) for v in extra_values]
    return values


@fuzz(headers=headers, answers=st.lists(statuses, min_size=1, max_size=6))
def test_no_identity_is_forwarded_unless_every_value_was_allowed_with_a_json_true(
    headers: Headers, answers: list[Any]
) -> None:
    try:
        requested = requested_impersonation(headers)
    except BadImpersonation:
        return
    if requested is None:
        return
    kube = HostileKube(answers)
    denied = LOOP.run_until_complete(ImpersonationChecker(kube).first_denied(CALLER, requested))
    if denied is not None:
        refused = (denied.resource, denied.subresource, denied.namespace, denied.name)
        assert not json_true_allow(kube.answered[refused])
        assert kube.asked[-1] == refused  # nothing asked after the value refused
        assert all(json_true_allow(kube.answered[a]) for a in kube.asked[:-1])
        return
    sent = apiserver_reads(identity_headers(target_user(requested, CALLER)))
    for value in reviewed_values(sent):
        assert value in kube.answered, value
        assert json_true_allow(kube.answered[value]), (value, kube.answered[value])
    assert len(kube.asked) == len(set(kube.asked))  # each value reviewed once
    record = {k: v for k, v in sent.extra.items() if k.startswith(b"originaluser.")}
    assert record == {
        b"originaluser.jetstack.io-user": [b"alice"],
        b"originaluser.jetstack.io-groups": [b"dev"],
        b"originaluser.jetstack.io-uid": [b"u-1"],
        b"originaluser.jetstack.io-extra": [b'{"acme.com/team": ["blue"]}'],
    }
