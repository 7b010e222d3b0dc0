"""login.routes: which paths are the login's, and how strictly their queries are read."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.login.routes import BadQuery, Route, is_login_path, parse_target


@pytest.mark.parametrize(
    "target",
    [b"/login", b"/login?issuer=x", b"/login/", b"/login/callback?code=a&state=b", b"/login/x/y", b"/login//evil"],
)
def test_login_and_everything_under_it_is_the_logins(target: bytes) -> None:
    assert is_login_path(target)


@pytest.mark.parametrize(
    "target",
    [
        b"/api",
        b"/apis",
        b"/version",
        b"/openapi/v2",
        b"/loginx",
        b"/Login",
        b"/login%2Fcallback",
        b"//login",
        b"/api/v1/namespaces/login",
        b"/api?/login",
        b"*",
    ],
)
def test_every_other_path_is_kube_apiservers(target: bytes) -> None:
    assert not is_login_path(target)


@pytest.mark.parametrize(
    ("target", "route"),
    [
        (b"/login", Route.START),
        (b"/login?issuer=x", Route.START),
        (b"/login/callback?code=c&state=s", Route.CALLBACK),
        (b"/login/kubeconfig", Route.KUBECONFIG),
        (b"/login/style.css", Route.STYLE),
        (b"/login/", Route.NOT_FOUND),
        (b"/login/callback/", Route.NOT_FOUND),
        (b"/login/Callback", Route.NOT_FOUND),
        (b"/login/%63allback", Route.NOT_FOUND),
        (b"/login/../login", Route.NOT_FOUND),
    ],
)
def test_routes_are_exact_paths(target: bytes, route: Route) -> None:
    assert parse_target(target).route is route


def test_the_query_is_decoded_and_the_path_kept_apart_for_the_log() -> None:
    parsed = parse_target(b"/login/callback?code=a%2Bb&state=s%20t&empty=&redirect=https%3A%2F%2Fevil")
    assert parsed.path == b"/login/callback"
    assert parsed.query == {"code": "a+b", "state": "s t", "empty": "", "redirect": "https://evil"}


@pytest.mark.parametrize(
    "target",
    [
        b"/login/callback?state=a&state=b",
        b"/login?" + b"&".join(b"p%d=1" for p in range(17)),
        b"/login?x=" + b"a" * 17_000,
        b"/login?x=\xff",
    ],
)
def test_an_ambiguous_or_oversized_query_is_refused(target: bytes) -> None:
    with pytest.raises(BadQuery):
        parse_target(target)
