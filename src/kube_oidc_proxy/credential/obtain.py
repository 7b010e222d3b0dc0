"""Carrying out the plan: read the cache, refresh or log in, write the cache back. The IO half of
``plan``; every message for the user goes through ``say`` (stderr), and none holds a token."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kube_oidc_proxy import oidcclient
from kube_oidc_proxy.credential import cache, login
from kube_oidc_proxy.credential.errors import CredentialError
from kube_oidc_proxy.credential.plan import Step, after_refresh_refused, first_step
from kube_oidc_proxy.httpclient import FetchError, fetch

DISCOVERY_TIMEOUT_SECONDS: Final = 30.0
MAX_DISCOVERY_BYTES: Final = 1024 * 1024
REFUSED: Final = "invalid_grant"  # RFC 6749 §5.2: the refresh token is invalid, expired or revoked


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str
    client: oidcclient.Client
    scopes: tuple[str, ...]  # as asked for; empty: what the provider's discovery suggests
    ssl_context: ssl.SSLContext
    cache_dir: Path
    listen: tuple[str, int]
    open_browser: bool
    interactive: bool


def need_login_message(settings: Settings) -> str:
    return (
        f"no valid token for {settings.issuer} (client {settings.client.client_id}) and no usable refresh token; "
        "logging in needs a browser, which this non-interactive run may not open: run kubectl from a terminal "
        "(e.g. kubectl auth whoami) to log in"
    )


async def obtain(settings: Settings, say: Callable[[str], None]) -> str:
    """A fresh id_token (cached for the next run)."""
    entry = _load(settings, say)
    step = first_step(entry, time.time(), interactive=settings.interactive)
    if step is Step.USE_CACHED:
        assert entry is not None
        return entry.id_token
    provider = None
    if step is Step.REFRESH:
        assert entry is not None and entry.refresh_token is not None
        provider = await discover(settings)
        try:
            tokens = await oidcclient.refresh(provider, settings.client, settings.ssl_context, entry.refresh_token)
        except oidcclient.ProviderError as exc:
            if exc.error != REFUSED:
                raise CredentialError(
                    f"could not refresh the token (the refresh token is kept for the next try): {exc}"
                ) from None
            # Another run (a second kubectl) may have used the same refresh token a moment ago, and the
            # provider rotated it: then that run's tokens are in the cache now, and must not be forgotten.
            current = _load(settings, say)
            if current is not None and current.refresh_token != entry.refresh_token:
                if first_step(current, time.time(), interactive=False) is Step.USE_CACHED:
                    return current.id_token
            else:
                _forget(settings)
            say(f"the identity provider refused the cached refresh token ({exc}); it is forgotten")
            step = after_refresh_refused(interactive=settings.interactive)
        else:
            # A provider that rotates refresh tokens sends a new one; one that does not keeps the old one good.
            _store(settings, say, tokens.id_token, tokens.refresh_token or entry.refresh_token)
            return tokens.id_token
    if step is Step.NEED_LOGIN:
        raise CredentialError(need_login_message(settings))
    provider = provider or await discover(settings)
    scopes = settings.scopes or oidcclient.default_scopes(provider.scopes_supported)
    tokens = await login.browser_login(
        provider,
        settings.client,
        settings.ssl_context,
        scopes=scopes,
        listen=settings.listen,
        open_browser=settings.open_browser,
        say=say,
    )
    _store(settings, say, tokens.id_token, tokens.refresh_token)
    if tokens.refresh_token is None:
        say("logged in; the identity provider sent no refresh token, so the next login will need the browser again")
    return tokens.id_token


async def discover(settings: Settings) -> oidcclient.ProviderMetadata:
    """The provider's endpoints from its discovery document, which must name this issuer."""
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = await fetch(
            url, settings.ssl_context, timeout=DISCOVERY_TIMEOUT_SECONDS, max_bytes=MAX_DISCOVERY_BYTES
        )
    except FetchError as exc:
        raise CredentialError(f"cannot reach the identity provider: {exc}") from None
    if response.status != 200:
        raise CredentialError(f"GET {url}: HTTP {response.status}")
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        raise CredentialError(f"GET {url}: not JSON") from None
    try:
        provider = oidcclient.provider_metadata(document)
    except oidcclient.ProviderError as exc:
        raise CredentialError(f"GET {url}: {exc}") from None
    if provider.issuer != settings.issuer:
        raise CredentialError(
            f"GET {url}: the provider calls itself {provider.issuer!r}, not {settings.issuer!r} (check --issuer-url)"
        )
    return provider


def _load(settings: Settings, say: Callable[[str], None]) -> cache.Entry | None:
    try:
        return cache.load_tokens(settings.cache_dir, settings.issuer, settings.client.client_id, settings.scopes)
    except cache.CacheIgnored as exc:
        say(f"warning: {exc}")
        return None


def _store(settings: Settings, say: Callable[[str], None], id_token: str, refresh_token: str | None) -> None:
    """Cache the tokens; a cache that cannot be written costs the next run a login, not this run its token."""
    try:
        cache.store_tokens(
            settings.cache_dir, settings.issuer, settings.client.client_id, settings.scopes, id_token, refresh_token
        )
    except OSError as exc:
        say(f"warning: cannot write the token cache {settings.cache_dir} ({exc.strerror}); the next run logs in again")


def _forget(settings: Settings) -> None:
    try:
        cache.forget_tokens(settings.cache_dir, settings.issuer, settings.client.client_id, settings.scopes)
    except OSError as exc:
        raise CredentialError(f"cannot remove the token cache in {settings.cache_dir}: {exc.strerror}") from None
