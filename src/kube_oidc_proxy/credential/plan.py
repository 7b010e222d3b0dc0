"""Where the next token comes from, as a decision apart from doing it: the cached id_token while it is
fresh, else the refresh token, else a browser login, which only an interactive session may start.

Each source is tried at most once per run; a refresh the provider refuses (``invalid_grant``: revoked,
expired or rotated away) leaves only the browser.
"""

from __future__ import annotations

import enum

from kube_oidc_proxy.credential import expiry
from kube_oidc_proxy.credential.cache import Entry


class Step(enum.Enum):
    USE_CACHED = "use the cached id_token"
    REFRESH = "use the refresh token"
    BROWSER = "log in with the browser"
    NEED_LOGIN = "a login is needed but the session is not interactive"


def first_step(entry: Entry | None, now: float, *, interactive: bool) -> Step:
    if entry is not None:
        if _fresh(entry.id_token, now):
            return Step.USE_CACHED
        if entry.refresh_token:
            return Step.REFRESH
    return after_refresh_refused(interactive=interactive)


def after_refresh_refused(*, interactive: bool) -> Step:
    return Step.BROWSER if interactive else Step.NEED_LOGIN


def _fresh(id_token: str, now: float) -> bool:
    try:
        return expiry.is_fresh(expiry.claims(id_token), now)
    except expiry.TokenFormatError:
        return False  # a cache we cannot read is as good as an expired one
