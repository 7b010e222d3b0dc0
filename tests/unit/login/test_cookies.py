"""login.cookies: one cookie per login, named after its state, with the login's attributes; read back by the
state's name only, and cleared by the callback."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kube_oidc_proxy.login.cookies import PREFIX, clear_cookie, login_cookie, name_for, set_cookie
from kube_oidc_proxy.login.sealed import MAX_TEXT
from kube_oidc_proxy.oidcclient import random_token

STATE = random_token()
NAME = name_for(STATE)
VALUE = "sealed-" + "A" * 400


def test_the_cookie_is_host_only_secure_httponly_lax_and_short_lived() -> None:
    assert set_cookie(STATE, VALUE) == f"{NAME}={VALUE}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600".encode()
    assert NAME.startswith("__Host-")


def test_clearing_it_keeps_the_attributes_the_prefix_demands() -> None:
    assert clear_cookie(STATE) == f"{NAME}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0".encode()


def test_each_login_has_its_own_name_from_a_hash_of_its_state() -> None:
    digest = base64.urlsafe_b64encode(hashlib.sha256(STATE.encode()).digest()).decode()
    assert NAME == PREFIX + digest[:16] == "__Host-kop-login-" + digest[:16]
    assert STATE not in NAME and name_for(STATE) == NAME != name_for(random_token())


@pytest.mark.parametrize("state", ["", ";", "a=b; c", "\r\nSet-Cookie: x", "é", "\ud800", "x" * 100_000])
def test_any_state_makes_a_plain_cookie_name(state: str) -> None:
    name = name_for(state)
    suffix = name.removeprefix(PREFIX)
    assert len(suffix) == 16 and all(c.isalnum() or c in "-_" for c in suffix)


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ([f"{NAME}={VALUE}".encode()], VALUE),
        ([f"a=b; {NAME}={VALUE}; c=d".encode()], VALUE),
        ([b"a=b", f"{NAME}={VALUE}".encode()], VALUE),  # HTTP/2 sends cookies as separate fields
        ([f"{NAME}={VALUE}; {NAME}=other".encode()], VALUE),
        ([f"{name_for(random_token())}=other; {NAME}={VALUE}".encode()], VALUE),  # another tab's login
        ([f"{name_for(random_token())}={VALUE}".encode()], None),
        ([b"a=b"], None),
        ([], None),
        ([f"{NAME}=".encode()], None),
        ([f"{NAME}={'A' * (MAX_TEXT + 1)}".encode()], None),
        ([f"{NAME.lower()}={VALUE}".encode()], None),
        ([f"__Host-kop-login={VALUE}".encode()], None),
        ([f"{NAME}x={VALUE}".encode()], None),
    ],
)
def test_only_the_states_cookie_is_read_back(headers: list[bytes], found: str | None) -> None:
    assert login_cookie(headers, STATE) == found
