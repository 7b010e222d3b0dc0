"""Which audit stages an exchange emits at each moment, as kube-apiserver emits them (pure).

kube-apiserver's filters: a request that fails authentication is one ``ResponseStarted`` event (its
``WithFailedAuthenticationAudit``); any other request gets ``RequestReceived`` once it is authenticated, a
``ResponseStarted`` only for long-running responses (watches, followed logs, upgrades), and
``ResponseComplete`` at the end, or ``Panic`` for a handler that crashed.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from kube_oidc_proxy.status import REASONS

Stage = Literal["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]

ADMITTED: Final[tuple[Stage, ...]] = ("RequestReceived",)
ENDED: Final[tuple[Stage, ...]] = ("ResponseComplete",)
PANICKED: Final[tuple[Stage, ...]] = ("Panic",)


def denied(code: int) -> tuple[Stage, ...]:
    """A request the proxy refused itself: 401 is a failed authentication, others (403 for ``--as``, 429)
    were authenticated first."""
    return ("ResponseStarted",) if code == 401 else ("RequestReceived", "ResponseComplete")


def response_head(status: int, *, long_running: bool) -> tuple[Stage, ...]:
    """When kube-apiserver's head is relayed: only a long-running response has a started stage."""
    return ("ResponseStarted",) if status == 101 or long_running else ()


def response_status(code: int, message: str = "") -> dict[str, Any]:
    """The event's ``responseStatus``: the code, and for a failure kube-apiserver's Status fields."""
    status: dict[str, Any] = {"metadata": {}, "code": code}
    if code >= 400:
        status |= {"status": "Failure", "message": message, "reason": REASONS.get(code, "")}
    return status
