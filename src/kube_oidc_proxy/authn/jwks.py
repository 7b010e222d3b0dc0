"""The issuer's signing keys: OIDC discovery, then the JWKS, kept fresh in the background.

- Discovery at ``<issuer>/.well-known/openid-configuration`` (or the configured discovery URL); its
  ``issuer`` must equal ours exactly (OIDC Discovery §4.3), its ``jwks_uri`` gives the key set.
- Keys are refreshed every ``refresh_interval``; a failed fetch keeps the last good keys and retries
  sooner. Until the first success nothing can be verified (``ready`` is False) and we retry every
  ``retry_interval``, as kube-apiserver does for an issuer that starts after it.
- A token with an unknown ``kid`` asks for one refetch: concurrent askers share it (single flight) and
  refetches are at least ``min_refetch_interval`` apart, so a flood of made-up kids costs one fetch.
  The request waits for that refetch at most ``unknown_kid_wait`` (the fetch itself goes on): a slow
  IdP must not hold a request for the fetch's 30 s.
- Only signature keys of RSA and EC types are kept; symmetric (``oct``) keys are dropped, so a
  published HMAC secret can never verify a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from kube_oidc_proxy.errors import describe
from kube_oidc_proxy.httpclient import FetchError, FetchResponse, fetch

log = logging.getLogger("kop.jwks")

PublicKey = RSAKey | ECKey
Fetcher = Callable[[str], Awaitable[FetchResponse]]

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
FETCH_TIMEOUT_SECONDS: Final = 30.0  # kube-apiserver's OIDC HTTP client timeout
UNKNOWN_KID_WAIT_SECONDS: Final = 5.0  # how long a token with an unknown kid waits for the refetch

_KTY_FOR_ALG: Final = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
}  # fmt: skip
_CURVE_FOR_ALG: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass(frozen=True, slots=True)
class KeySet:
    by_kid: dict[str, list[PublicKey]]
    all_keys: list[PublicKey]
    fetched_at: float  # unix time

    def candidates(self, kid: str | None, alg: str) -> list[PublicKey]:
        """Keys that could have signed a token with this ``kid`` and ``alg`` (all of them if no kid)."""
        keys = self.by_kid.get(kid, []) if kid is not None else self.all_keys
        kty = _KTY_FOR_ALG.get(alg)
        curve = _CURVE_FOR_ALG.get(alg)
        return [k for k in keys if k.key_type == kty and (curve is None or k.as_dict().get("crv") == curve)]


def parse_jwks(document: Any, now: float) -> KeySet:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no keys list")
    by_kid: dict[str, list[PublicKey]] = {}
    all_keys: list[PublicKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            key = import_key(public)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            log.warning("skipping a key of the JWKS that does not import: %r", exc)
            continue
        if not isinstance(key, RSAKey | ECKey):
            continue
        all_keys.append(key)
        kid = entry.get("kid")
        if isinstance(kid, str):
            by_kid.setdefault(kid, []).append(key)
    if not all_keys:
        raise ValueError("JWKS document has no usable signature keys")
    return KeySet(by_kid=by_kid, all_keys=all_keys, fetched_at=now)


def failure_text(exc: BaseException) -> str:
    """Why a fetch failed, for the log and readiness: our own FetchError already names the URL and the
    cause; anything else says what it is and its message. The key fetch carries no user token, so no
    message here can contain one."""
    return str(exc) if isinstance(exc, FetchError) else describe(exc)


def discovery_url_for(issuer_url: str) -> str:
    return issuer_url.rstrip("/") + "/.well-known/openid-configuration"


class KeySource:
    def __init__(
        self,
        issuer_url: str,
        ssl_context: ssl.SSLContext,
        *,
        discovery_url: str | None = None,
        refresh_interval: float = 300.0,
        retry_interval: float = 10.0,
        min_refetch_interval: float = 10.0,
        unknown_kid_wait: float = UNKNOWN_KID_WAIT_SECONDS,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer_url = issuer_url
        self._discovery_url = discovery_url or discovery_url_for(issuer_url)
        self._ssl_context = ssl_context
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._min_refetch_interval = min_refetch_interval
        self._unknown_kid_wait = unknown_kid_wait
        self._fetcher = fetcher or self._default_fetch
        self._clock = clock
        self.keys: KeySet | None = None
        self.discovery: dict[str, Any] | None = None  # the last good discovery document (for browser login)
        self.last_error = ""
        self.fetch_count = 0
        self.fetched_at = 0.0  # wall-clock time the keys in use were fetched; 0: none yet
        self._inflight: asyncio.Task[bool] | None = None
        self._last_attempt = -float("inf")
        self._runner: asyncio.Task[None] | None = None
        self.on_fetch: Callable[[bool], None] | None = None  # told each fetch's outcome (for metrics)

    @property
    def ready(self) -> bool:
        return self.keys is not None

    @property
    def fetching(self) -> bool:
        """A fetch is in flight (``refresh`` would share it)."""
        return self._inflight is not None

    async def _default_fetch(self, url: str) -> FetchResponse:
        return await fetch(url, self._ssl_context, timeout=FETCH_TIMEOUT_SECONDS, max_bytes=MAX_DOCUMENT_BYTES)

    async def _get_json(self, url: str) -> Any:
        response = await self._fetcher(url)
        if response.status != 200:
            raise FetchError(f"GET {url}: HTTP {response.status}")
        try:
            return json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise FetchError(f"GET {url}: not JSON") from exc

    async def _load(self) -> tuple[KeySet, dict[str, Any]]:
        url = self._discovery_url
        discovery = await self._get_json(url)
        if not isinstance(discovery, dict):
            raise FetchError(f"GET {url}: the discovery document is not a JSON object")
        if discovery.get("issuer") != self.issuer_url:
            raise FetchError(
                f"GET {url}: the discovery document's issuer {discovery.get('issuer')!r}"
                f" does not match {self.issuer_url!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise FetchError(f"GET {url}: the discovery document has no jwks_uri")
        try:
            return parse_jwks(await self._get_json(jwks_uri), self._clock()), discovery
        except ValueError as exc:
            raise FetchError(f"GET {jwks_uri}: {exc}") from exc

    async def refresh(self) -> bool:
        """Fetch now (sharing a fetch already running); True if the key set was replaced."""
        return await asyncio.shield(self._start_refresh())

    def _start_refresh(self) -> asyncio.Task[bool]:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh_once())
            self._inflight.add_done_callback(self._clear_inflight)
        return self._inflight

    def _clear_inflight(self, _: object) -> None:
        self._inflight = None

    async def _refresh_once(self) -> bool:
        self._last_attempt = time.monotonic()
        self.fetch_count += 1
        try:
            keys, discovery = await self._load()
        except Exception as exc:  # whatever fails, the loop must go on retrying
            self.last_error = failure_text(exc)
            state = "keeping the last good keys" if self.keys else "no keys yet"
            log.warning("fetching signing keys of %s failed (%s): %s", self.issuer_url, state, self.last_error)
            if not isinstance(exc, FetchError | OSError):
                log.debug("the unexpected failure fetching keys of %s", self.issuer_url, exc_info=exc)
            if self.on_fetch is not None:
                self.on_fetch(False)
            return False
        if self.keys is None:
            log.info("loaded %d signing keys of %s", len(keys.all_keys), self.issuer_url)
        self.keys = keys
        self.discovery = discovery
        self.fetched_at = self._clock()
        self.last_error = ""
        if self.on_fetch is not None:
            self.on_fetch(True)
        return True

    async def refetch_for_unknown_kid(self) -> bool:
        """A token named a key we do not have: refetch, unless we did so very recently. False also if the
        fetch takes longer than ``unknown_kid_wait``; it goes on, and a later token finds its keys."""
        if self._inflight is None and time.monotonic() - self._last_attempt < self._min_refetch_interval:
            return False
        fetch = self._start_refresh()  # at once, so concurrent askers find it and share it
        try:
            return await asyncio.wait_for(asyncio.shield(fetch), self._unknown_kid_wait)
        except TimeoutError:
            return False

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        while True:
            ok = await self.refresh()
            await asyncio.sleep(self._refresh_interval if ok else self._retry_interval)
