"""The --login-* flags and LoginConfig.validate: browser login is off without a client id, and the redirect URL
and scopes are checked at start."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.cli import parse
from kube_oidc_proxy.config import LoginConfig
from kube_oidc_proxy.errors import ConfigError

BASE = [
    "--oidc-issuer-url=https://issuer.example",
    "--oidc-client-id=kube",
    "--tls-cert-file=/c",
    "--tls-private-key-file=/k",
]


def test_login_is_off_by_default() -> None:
    parsed = parse(BASE)
    assert parsed is not None
    assert parsed[0].login == LoginConfig() and not parsed[0].login.enabled


def test_the_four_flags_are_read() -> None:
    parsed = parse(
        [
            *BASE,
            "--login-client-id=browser",
            "--login-client-secret-file=/secret",
            "--login-redirect-url=https://kube.example.com/login/callback",
            "--login-scopes=openid,email",
            "--login-scopes",
            "groups",
        ]
    )
    assert parsed is not None
    assert parsed[0].login == LoginConfig(
        "browser", "/secret", "https://kube.example.com/login/callback", ("openid", "email", "groups")
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://kube.example.com/login/callback",
        "https://kube.example.com:8443/login/callback",
        "https://[2001:db8::1]/login/callback",
    ],
)
def test_an_https_callback_url_is_accepted(url: str) -> None:
    assert LoginConfig("kube", redirect_url=url).validate() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://kube.example.com/login/callback",
        "https://kube.example.com/callback",
        "https://kube.example.com/login/callback/",
        "https://kube.example.com/login/callback?next=x",
        "https://kube.example.com/login/callback#x",
        "https://user@kube.example.com/login/callback",
        "https:///login/callback",
        "https://kube example.com/login/callback",
        "//kube.example.com/login/callback",
    ],
)
def test_any_other_redirect_url_is_refused_at_start(url: str) -> None:
    [error] = LoginConfig("kube", redirect_url=url).validate()
    assert error.startswith("--login-redirect-url must be an https URL")


def test_scopes_must_include_openid_and_be_scope_names() -> None:
    assert LoginConfig("kube", scopes=("email",)).validate() == [
        "--login-scopes must include openid (the id_token is what the proxy verifies)"
    ]
    assert LoginConfig("kube", scopes=("openid", 'a"b')).validate() == ["--login-scopes: 'a\"b' is not a scope name"]


def test_the_other_login_flags_need_the_client_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="need --login-client-id"):
        parse([*BASE, "--login-redirect-url=https://kube.example.com/login/callback"])
