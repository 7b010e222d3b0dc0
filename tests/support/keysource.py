"""Refreshing a KeySource after a test changed the issuer.

``KeySource.refresh()`` shares a fetch already in flight (single flight), and the background loop or a
request may have started one before the change: that fetch's answer is about the issuer as it was. A
``refresh()`` once that one has ended starts (or joins) a fetch that began after the change."""

from __future__ import annotations

from kube_oidc_proxy.authn.jwks import KeySource


async def refresh_after_change(source: KeySource) -> bool:
    """Whether a fetch that started after the caller's change replaced the keys."""
    if source.fetching:
        await source.refresh()  # its answer is about the issuer before the change
    return await source.refresh()
