"""The order of sources: fresh cache, then the refresh token, then the browser, which needs a terminal."""

from __future__ import annotations

import base64
import json

import pytest

from kube_oidc_proxy.credential.cache import Entry
from kube_oidc_proxy.credential.plan import Step, after_refresh_refused, first_step

NOW = 1_000_000.0


def token(exp: float, iat: float = NOW - 100) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp, "iat": iat}).encode()).rstrip(b"=").decode()
    return f"e30.{payload}.c2ln"


FRESH = token(NOW + 600)
INSIDE_MARGIN = token(NOW + 30, iat=NOW - 570)  # 10 minutes long, 30 s left: within the last minute
EXPIRED = token(NOW - 1)


@pytest.mark.parametrize(
    ("entry", "interactive", "step"),
    [
        (Entry(FRESH, "rt"), False, Step.USE_CACHED),
        (Entry(FRESH, None), False, Step.USE_CACHED),
        (Entry(INSIDE_MARGIN, "rt"), False, Step.REFRESH),
        (Entry(EXPIRED, "rt"), False, Step.REFRESH),
        (Entry(EXPIRED, "rt"), True, Step.REFRESH),
        (Entry("garbage", "rt"), False, Step.REFRESH),
        (Entry(EXPIRED, None), True, Step.BROWSER),
        (Entry(EXPIRED, None), False, Step.NEED_LOGIN),
        (None, True, Step.BROWSER),
        (None, False, Step.NEED_LOGIN),
    ],
)
def test_first_step(entry: Entry | None, interactive: bool, step: Step) -> None:
    assert first_step(entry, NOW, interactive=interactive) is step


def test_after_a_refused_refresh_only_the_browser_is_left() -> None:
    assert after_refresh_refused(interactive=True) is Step.BROWSER
    assert after_refresh_refused(interactive=False) is Step.NEED_LOGIN
