"""Reading kubectl --as headers under kube-apiserver's rules."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authz.requested import (
    MAX_IMPERSONATED_VALUES,
    MAX_VALUE_BYTES,
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


@pytest.mark.parametrize(
    "name",
    [
        b"impersonate-extra-originaluser.jetstack.io-user",
        b"impersonate-extra-originaluser.jetstack.io-groups",
        b"impersonate-extra-originaluser.jetstack.io-uid",
        b"impersonate-extra-originaluser.jetstack.io-extra",
        b"impersonate-extra-originaluser%2ejetstack.io-user",  # the parser lower-cases names: %2E arrives as %2e
        b"impersonate-extra-originaluser%2Ejetstack%2Eio-user",
        b"impersonate-extra-%6friginaluser.jetstack.io-user",
        b"impersonate-extra-%4friginaluser.jetstack.io-user",  # "Originaluser...": still the namespace, refused
        b"impersonate-extra-originaluser.jetstack.io-user%zz",  # a malformed escape: kept whole, still reserved
        b"impersonate-extra-originaluser.example.com/anything",
    ],
)
def test_the_proxys_own_record_of_who_asked_cannot_be_requested(name: bytes) -> None:
    # the parser hands over lower-cased names: OriginalUser.jetstack.io-user arrives as the first case
    with pytest.raises(BadImpersonation, match="is reserved"):
        requested_impersonation([(b"impersonate-user", b"bob"), (name, b"root")])


def test_more_values_than_the_limit_is_a_bad_request_that_names_the_limit() -> None:
    at_limit = [(b"impersonate-group", f"g{i}".encode()) for i in range(MAX_IMPERSONATED_VALUES - 2)]
    at_limit += [(b"impersonate-extra-scopes", b"view"), (b"impersonate-uid", b"7")]
    request = requested_impersonation([(b"impersonate-user", b"bob"), *at_limit])
    assert request is not None and len(request.groups) == MAX_IMPERSONATED_VALUES - 2
    for one_more in [(b"impersonate-group", b"g"), (b"impersonate-extra-scopes", b"edit")]:
        with pytest.raises(BadImpersonation, match=f"at most {MAX_IMPERSONATED_VALUES} groups, extra values and uid"):
            requested_impersonation([(b"impersonate-user", b"bob"), *at_limit, one_more])


def test_two_hundred_groups_are_refused_as_too_many() -> None:
    headers = [(b"impersonate-user", b"bob")] + [(b"impersonate-group", f"g{i}".encode()) for i in range(200)]
    with pytest.raises(BadImpersonation, match="too many impersonated values"):
        requested_impersonation(headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"impersonate-user", b"u" * (MAX_VALUE_BYTES + 1)),
        (b"impersonate-group", b"g" * (MAX_VALUE_BYTES + 1)),
        (b"impersonate-uid", b"1" * (MAX_VALUE_BYTES + 1)),
        (b"impersonate-extra-scopes", b"v" * (MAX_VALUE_BYTES + 1)),
        (b"impersonate-extra-" + b"k" * (MAX_VALUE_BYTES + 1), b"v"),
    ],
)
def test_a_value_or_key_longer_than_the_limit_is_a_bad_request_that_does_not_echo_it(name: bytes, value: bytes) -> None:
    headers = [(b"impersonate-user", b"bob"), (name, value)] if name != b"impersonate-user" else [(name, value)]
    with pytest.raises(BadImpersonation, match=f"longer than {MAX_VALUE_BYTES} bytes") as refused:
        requested_impersonation(headers)
    assert len(str(refused.value)) < 200


def test_values_at_the_length_limit_are_read() -> None:
    longest = "é" * (MAX_VALUE_BYTES // 2)  # 4096 bytes of UTF-8
    request = requested_impersonation(
        [(b"impersonate-user", longest.encode()), (b"impersonate-extra-" + b"k" * MAX_VALUE_BYTES, b"v")]
    )
    assert request is not None and request.user == longest and "k" * MAX_VALUE_BYTES in request.extra
