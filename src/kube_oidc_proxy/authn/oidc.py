"""Verify one token against one issuer: signature with the issuer's keys, then the claims.

``verify`` is the whole path for a token whose ``iss`` is this issuer's. A token naming a key we do not
have triggers one (shared, rate-limited) refetch of the keys, then one more try, so issuer key rotation
needs no restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from joserfc import jws
from joserfc.errors import JoseError

from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.jwks import KeySource, PublicKey
from kube_oidc_proxy.authn.model import Authenticated, Failure, JWTAuthenticatorSpec, Rejected
from kube_oidc_proxy.authn.token import ParsedToken


def _signature_valid(token: ParsedToken, keys: list[PublicKey]) -> bool:
    for key in keys:
        try:
            jws.deserialize_compact(token.raw, key, algorithms=[token.alg])
        except (JoseError, ValueError):
            continue
        return True
    return False


class JWTAuthenticator:
    def __init__(
        self,
        spec: JWTAuthenticatorSpec,
        keys: KeySource,
        *,
        allow_system_identities: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.keys = keys
        self._allow_system = allow_system_identities
        self._clock = clock

    async def verify(self, token: ParsedToken) -> Authenticated | Rejected:
        if token.alg not in self.spec.signing_algs:
            return Rejected(Failure.BAD_ALGORITHM, f"signing algorithm {token.alg!r} is not allowed")
        key_set = self.keys.keys
        if key_set is None:
            return Rejected(
                Failure.KEYS_UNAVAILABLE,
                f"signing keys of {self.spec.issuer_url} are not loaded yet ({self.keys.last_error})",
                "the OIDC issuer's signing keys are not available yet; try again shortly",
                503,
            )
        candidates = key_set.candidates(token.kid, token.alg)
        if not candidates and token.kid is not None and await self.keys.refetch_for_unknown_kid():
            key_set = self.keys.keys or key_set
            candidates = key_set.candidates(token.kid, token.alg)
        if not candidates:
            reason = f"no signing key matches kid {token.kid!r} and alg {token.alg}{self._fetch_state()}"
            return Rejected(Failure.UNKNOWN_KEY, reason)
        if not _signature_valid(token, candidates):
            return Rejected(Failure.BAD_SIGNATURE, "token signature is invalid")
        return user_from_claims(token.claims, self.spec, self._clock(), allow_system_identities=self._allow_system)

    def _fetch_state(self) -> str:
        """Why the keys may be behind the issuer's, for the log: an IdP outage or a slow IdP."""
        if self.keys.fetching:
            return f" (a fetch of the keys of {self.spec.issuer_url} is still running)"
        if self.keys.last_error:
            return f" (the last fetch of the keys failed: {self.keys.last_error})"
        return ""
