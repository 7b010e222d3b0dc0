"""Expiry maths: kubectl must ask again before the id_token dies, without wasting short tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kube_oidc_proxy.credential import expiry


def jwt(payload: Any) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJSUzI1NiJ9.{encoded}.c2ln"


@pytest.mark.parametrize(
    ("iat", "exp", "now", "margin"),
    [
        (1000, 1000 + 3600, 1000, 60.0),  # an hour: a minute early
        (1000, 1000 + 240, 1000, 60.0),  # four minutes: still a minute
        (1000, 1000 + 20, 1000, 5.0),  # 20 s (the e2e realm): a quarter
        (1000, 1000 + 1, 1000, 0.25),
        (None, 2000, 1900, 25.0),  # no iat: a quarter of what is left
        (3000, 2000, 1900, 25.0),  # iat after exp is nonsense: as if absent
        (None, 2000, 2100, 0.0),  # already expired: no negative margin
    ],
)
def test_the_margin_is_a_quarter_of_the_lifetime_and_at_most_a_minute(
    iat: int | None, exp: int, now: float, margin: float
) -> None:
    payload: dict[str, Any] = {"exp": exp} if iat is None else {"exp": exp, "iat": iat}
    assert expiry.margin(payload, now) == margin
    assert expiry.renew_at(payload, now) == exp - margin


def test_a_token_is_fresh_until_the_margin_before_exp() -> None:
    payload = {"iat": 0, "exp": 600}
    assert expiry.is_fresh(payload, 539.9)
    assert not expiry.is_fresh(payload, 540)
    assert not expiry.is_fresh(payload, 700)


def test_rfc3339_is_utc_whole_seconds_rounded_down() -> None:
    assert expiry.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert expiry.rfc3339(1714564800.999) == "2024-05-01T12:00:00Z"


def test_claims_reads_the_payload_without_verifying() -> None:
    assert expiry.claims(jwt({"exp": 5, "nonce": "n"})) == {"exp": 5, "nonce": "n"}
    assert expiry.claims(jwt({"exp": 5.5}))["exp"] == 5.5


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b",
        "a.!!!.c",
        "a." + base64.urlsafe_b64encode(b"not json").decode() + ".c",
        jwt([1, 2]),
        jwt({"sub": "no exp"}),
        jwt({"exp": "soon"}),
        jwt({"exp": True}),
    ],
)
def test_what_is_not_a_jwt_with_a_numeric_exp_is_refused(token: str) -> None:
    with pytest.raises(expiry.TokenFormatError):
        expiry.claims(token)
