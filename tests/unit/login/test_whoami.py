"""login.whoami: the page shows exactly the identity an API request with the same token is sent as."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.impersonation import UnforwardableIdentity, identity_headers
from kube_oidc_proxy.login.whoami import whoami


def test_system_authenticated_is_added_as_the_proxy_adds_it() -> None:
    who = whoami(UserInfo("alice", "u-1", ("dev",)), {})
    assert (who.username, who.uid, who.groups, who.extra) == ("alice", "u-1", ("dev", "system:authenticated"), ())


def test_extras_from_the_token_and_from_the_flags_are_merged_and_sorted() -> None:
    user = UserInfo("alice", extra={"example.com/tenant": ("acme",), "site": ("us",)})
    who = whoami(user, {"site": ("eu",), "cluster": ("prod",)}, client_ip="192.0.2.7")
    assert who.extra == (
        ("cluster", ("prod",)),
        ("example.com/tenant", ("acme",)),
        ("remote-client-ip", ("192.0.2.7",)),
        ("site", ("us", "eu")),
    )


@pytest.mark.parametrize(
    "user",
    [
        UserInfo("alice"),
        UserInfo("bob", groups=("a", "b", "system:authenticated")),
        UserInfo("c", extra={"k": ("1", "2")}),
    ],
)
def test_the_groups_are_the_impersonate_group_headers(user: UserInfo) -> None:
    sent = [v.decode() for n, v in identity_headers(user, {"x": ("y",)}) if n == b"impersonate-group"]
    assert list(whoami(user, {"x": ("y",)}).groups) == sent


def test_an_identity_the_proxy_would_not_forward_is_refused_here_too() -> None:
    with pytest.raises(UnforwardableIdentity):
        whoami(UserInfo(" alice"), {})
