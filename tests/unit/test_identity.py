"""identity: a value is refused exactly when kube-apiserver (Go's HTTP server) would read it differently."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.identity import user_problem, value_problem


def go_reads(value: str) -> str:
    """What Go's textproto.TrimString leaves of a header value: ASCII space, tab, CR and LF off both ends."""
    return value.strip(" \t\r\n")


@pytest.mark.parametrize(
    "value",
    ["alice", "system:masters", "jösé", "日本", "a b", "CN=Domain Users,DC=corp", "a\x85b", "\u00a0system:masters", ""],
)
def test_values_go_reads_as_written_are_accepted(value: str) -> None:
    assert go_reads(value) == value
    assert value_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (" system:masters", "has leading or trailing whitespace"),
        ("system:masters ", "has leading or trailing whitespace"),
        ("\tsystem:masters", "contains control characters"),
        ("a\tb", "contains control characters"),
        ("alice\r\nImpersonate-User: admin", "contains control characters"),
        ("a\x00", "contains control characters"),
        ("a\x7f", "contains control characters"),
        ("dev\ud800", "is not valid Unicode text"),
    ],
)
def test_values_go_would_read_differently_or_not_at_all_are_refused(value: str, problem: str) -> None:
    assert value_problem(value) == problem


def test_every_field_of_a_user_is_checked_and_named() -> None:
    assert user_problem(UserInfo("alice", groups=("dev", " system:masters"))) == (
        'group " system:masters" has leading or trailing whitespace'
    )
    assert user_problem(UserInfo("alice", uid="1 ")) == 'uid "1 " has leading or trailing whitespace'
    assert user_problem(UserInfo("alice", extra={" k": ("v",)})) == 'extra key " k" has leading or trailing whitespace'
    assert user_problem(UserInfo("alice", extra={"": ("v",)})) == 'extra key "" is empty'
    assert (
        user_problem(UserInfo("alice", extra={"k": ("v\n",)})) == 'extra "k" value "v\\n" contains control characters'
    )
    assert user_problem(UserInfo("alice", groups=("dev",), extra={"k": ("v",)})) is None
