"""login.cookies: the login cookie's attributes, and reading it back from Cookie headers."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.login.cookies import NAME, browser_cookie, browser_hash, set_cookie
from kube_oidc_proxy.oidcclient import random_token

VALUE = random_token()


def test_the_cookie_is_host_only_secure_httponly_lax_and_short_lived() -> None:
    assert set_cookie(VALUE) == f"{NAME}={VALUE}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600".encode()
    assert NAME.startswith("__Host-")


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ([f"{NAME}={VALUE}".encode()], VALUE),
        ([f"a=b; {NAME}={VALUE}; c=d".encode()], VALUE),
        ([b"a=b", f"{NAME}={VALUE}".encode()], VALUE),  # HTTP/2 sends cookies as separate fields
        ([f"{NAME}={VALUE}; {NAME}=other".encode()], VALUE),
        ([b"a=b"], None),
        ([], None),
        ([f"{NAME}=short".encode()], None),
        ([f"{NAME}={VALUE}x".encode()], None),
        ([f"{NAME}={VALUE[:-1]}!".encode()], None),
        ([f"kop-login={VALUE}".encode()], None),
        ([f"__host-kop-login={VALUE}".encode()], None),
    ],
)
def test_only_a_value_we_could_have_set_is_read_back(headers: list[bytes], found: str | None) -> None:
    assert browser_cookie(headers) == found


def test_the_pending_login_keeps_a_hash_of_the_cookie_not_the_cookie() -> None:
    digest = browser_hash(VALUE)
    assert len(digest) == 32 and VALUE.encode() not in digest
    assert digest == browser_hash(VALUE) != browser_hash(random_token())
