"""Verify one token against one issuer: signature with the issuer's keys, then the claims.

``verify`` is the whole path for a token whose ``iss`` is this issuer's. A token naming a key we do not
have triggers one (shared, rate-limited) refetch of the keys, then one more try, so issuer key rotation
needs no restart.

A refusal names what the operator needs to see: the token's ``alg`` and ``kid`` (quoted and bounded:
they are the caller's text) beside the algorithms allowed and the keys loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from joserfc import jws
from joserfc.errors import JoseError

from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.jwks import KeySet, KeySource, PublicKey
from kube_oidc_proxy.authn.model import Authenticated, Failure, JWTAuthenticatorSpec, Rejected
from kube_oidc_proxy.authn.quoting import LIST_ITEMS, listed, quoted
from kube_oidc_proxy.authn.token import ParsedToken


def _signature_valid(token: ParsedToken, keys: list[PublicKey]) -> bool:
    for key in keys:
        try:
            jws.deserialize_compact(token.raw, key, algorithms=[token.alg])
        except (JoseError, ValueError):
            continue
        return True
    return False


def _kid(kid: str | None) -> str:
    return f"kid {quoted(kid)}" if kid is not None else "no kid"


def loaded_keys(key_set: KeySet) -> str:
    """The keys in use, as an operator compares them with the token's header: ``kid "a" (RSA), kid "b" (EC
    P-256)``; keys without a kid are counted."""
    named = [(kid, key) for kid, keys in key_set.by_kid.items() for key in keys]
    shown = [f"kid {quoted(kid)} ({_key_type(key)})" for kid, key in named[:LIST_ITEMS]]
    if len(named) > LIST_ITEMS:
        shown.append(f"{len(named) - LIST_ITEMS} more")
    without_kid = len(key_set.all_keys) - len(named)
    if without_kid > 0:
        shown.append(f"{without_kid} without a kid")
    return ", ".join(shown)


def _key_type(key: PublicKey) -> str:
    curve = key.as_dict().get("crv")
    return f"{key.key_type} {curve}" if isinstance(curve, str) else key.key_type


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
            allowed = listed(sorted(self.spec.signing_algs))
            return Rejected(
                Failure.BAD_ALGORITHM, f"signing algorithm {quoted(token.alg)} is not allowed: expected {allowed}"
            )
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
            reason = (
                f"no signing key matches {_kid(token.kid)} and alg {quoted(token.alg)}; "
                f"the keys of {self.spec.issuer_url}: {loaded_keys(key_set)}{self._fetch_state()}"
            )
            return Rejected(Failure.UNKNOWN_KEY, reason)
        if not _signature_valid(token, candidates):
            tried = f"{len(candidates)} key{'' if len(candidates) == 1 else 's'}"
            reason = (
                f"token signature is invalid: {_kid(token.kid)}, alg {quoted(token.alg)}, "
                f"{tried} of {self.spec.issuer_url} tried"
            )
            return Rejected(Failure.BAD_SIGNATURE, reason)
        return user_from_claims(token.claims, self.spec, self._clock(), allow_system_identities=self._allow_system)

    def _fetch_state(self) -> str:
        """Why the keys may be behind the issuer's, for the log: an IdP outage or a slow IdP."""
        if self.keys.fetching:
            return f" (a fetch of the keys of {self.spec.issuer_url} is still running)"
        if self.keys.last_error:
            return f" (the last fetch of the keys failed: {self.keys.last_error})"
        return ""
