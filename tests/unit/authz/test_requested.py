"""Reading kubectl --as headers under kube-apiserver's rules."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authz.requested import (
    BadImpersonation,
    ImpersonationRequest,
    requested_impersonation,
    unescape_extra_key,
)


def test_no_impersonation_headers_is_none() -> None:
    assert requested_impersonation([(b"authorization", b"Bearer x"), (b"accept", b"*/*")]) is None


def test_every_kind_of_header_is_read() -> None:
    request = requested_impersonation(
        [
            (b"impersonate-user", b"bob"),
            (b"impersonate-group", b"a"),
            (b"impersonate-group", b"b"),
            (b"impersonate-uid", b"42"),
            (b"impersonate-extra-scopes", b"view"),
            (b"impersonate-extra-scopes", b"edit"),
            (b"impersonate-extra-acme.com%2Fproject", b"p1"),
        ]
    )
    assert request == ImpersonationRequest(
        user="bob",
        uid="42",
        groups=("a", "b"),
        extra={"scopes": ("view", "edit"), "acme.com/project": ("p1",)},
    )


@pytest.mark.parametrize(
    ("escaped", "key"),
    [
        (b"scopes", "scopes"),
        (b"Scopes", "scopes"),
        (b"acme.com%2Fproject", "acme.com/project"),
        (b"acme.com%2fproject", "acme.com/project"),
        (b"a%20b", "a b"),
        (b"bad%zzescape", "bad%zzescape"),
        # url.PathUnescape fails on the malformed escape, so kube-apiserver keeps the whole key, even its good escapes
        (b"acme.com%2Fproject%zz", "acme.com%2fproject%zz"),
        (b"%2f%", "%2f%"),
        (b"caf%C3%A9%4", "caf%c3%a9%4"),
        (b"caf%C3%A9", "café"),
        (b"%41dmin", "Admin"),  # kube-apiserver lower-cases the name, then unescapes: upper case survives escaped
    ],
)
def test_extra_keys_are_lowercased_and_unescaped_like_kube_apiserver(escaped: bytes, key: str) -> None:
    assert unescape_extra_key(escaped) == key


@pytest.mark.parametrize(
    "headers",
    [
        [(b"impersonate-group", b"ops")],
        [(b"impersonate-uid", b"1")],
        [(b"impersonate-extra-scopes", b"x")],
        [(b"impersonate-user", b""), (b"impersonate-group", b"ops")],
        [(b"impersonate-user", b"a"), (b"impersonate-user", b"b")],
        [(b"impersonate-user", b"a"), (b"impersonate-uid", b"1"), (b"impersonate-uid", b"2")],
        [(b"impersonate-user", b"a"), (b"impersonate-foo", b"x")],
        [(b"impersonate-user", b"a"), (b"impersonate-extra-", b"x")],
    ],
)
def test_nonsense_is_a_bad_request(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(BadImpersonation):
        requested_impersonation(headers)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"impersonate-user", b"a\tb")], id="tab inside a user"),
        pytest.param([(b"impersonate-user", b"\xff")], id="user not UTF-8"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-group", b"\xc3")], id="group not UTF-8"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-uid", b"x\x01")], id="control in uid"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-extra-k", b"v\x7f")], id="DEL in extra value"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-extra-half%C3", b"v")], id="key escape not UTF-8"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-extra-%20k", b"v")], id="key with leading space"),
        pytest.param([(b"impersonate-user", b"a"), (b"impersonate-extra-k%09", b"v")], id="key with trailing tab"),
    ],
)
def test_a_requested_value_kube_apiserver_would_read_differently_is_a_bad_request(
    headers: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(BadImpersonation):
        requested_impersonation(headers)


def test_values_are_taken_as_the_parser_trimmed_them_like_go() -> None:
    # llhttp drops leading whitespace and our reader trailing, exactly what Go's textproto.TrimString removes:
    # what is checked here is what kube-apiserver reads.
    request = requested_impersonation([(b"impersonate-user", b"system:admin"), (b"impersonate-group", b"g h")])
    assert request is not None
    assert (request.user, request.groups) == ("system:admin", ("g h",))
