"""The request-level token decision: cache, route by issuer, verify.

``lookup`` is the synchronous fast path (a verified token seen before); ``authenticate`` does the rest.
A token that is not a JWT, or names an issuer we do not trust, is ``NotMine``: with token passthrough it
may still be a credential the API server knows. The reason for an untrusted issuer names the token's
``iss`` and the trusted ones (neither is secret; kube-apiserver names both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kube_oidc_proxy.authn.cache import TokenCache, token_key
from kube_oidc_proxy.authn.claims import issuer_of
from kube_oidc_proxy.authn.model import Authenticated, AuthResult, Failure, NotMine
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.authn.quoting import claim, listed
from kube_oidc_proxy.authn.token import MalformedToken, parse_compact


class TokenAuthenticator:
    def __init__(
        self,
        authenticators: Iterable[JWTAuthenticator],
        cache: TokenCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._by_issuer = {a.spec.issuer_url: a for a in authenticators}
        self._trusted = listed(self._by_issuer)  # for the reason of every token of another issuer
        self.cache = cache
        self._clock = clock
        self._generation = 0  # bumped by replace(): a verification begun before must not fill the new cache

    def replace(self, authenticators: Iterable[JWTAuthenticator]) -> None:
        """Use these from now on (a reloaded configuration); tokens verified under the old ones are forgotten."""
        self._by_issuer = {a.spec.issuer_url: a for a in authenticators}
        self._trusted = listed(self._by_issuer)
        self._generation += 1
        self.cache.clear()

    @property
    def authenticators(self) -> list[JWTAuthenticator]:
        return list(self._by_issuer.values())

    def _untrusted(self, claims: dict[str, object]) -> str:
        got = f"the token's iss is {claim(claims['iss'])}" if "iss" in claims else "the token has no iss claim"
        return (
            f"{got}, trusted issuers are {self._trusted}" if self._by_issuer else f"{got}, and no issuer is configured"
        )

    def lookup(self, token: bytes) -> Authenticated | None:
        return self.cache.get(token_key(token), self._clock())

    async def authenticate(self, token: bytes) -> AuthResult:
        try:
            parsed = parse_compact(token)
        except MalformedToken as exc:
            return NotMine(Failure.MALFORMED, f"bearer token is not a JWT: {exc}")
        issuer = issuer_of(parsed.claims)
        authenticator = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if authenticator is None:
            return NotMine(
                Failure.WRONG_ISSUER, f"token issuer is not a trusted issuer: {self._untrusted(parsed.claims)}"
            )
        generation = self._generation
        result = await authenticator.verify(parsed)
        if isinstance(result, Authenticated) and generation == self._generation:
            self.cache.put(token_key(token), result, self._clock())
        return result
