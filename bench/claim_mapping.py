"""What CEL claim mappings add to the first request with a new token.

Maps the same claims with an AuthenticationConfiguration that uses claims and prefixes only (the
``--oidc-*`` flags' work) and with one where five expressions do it (username, groups, an extra, a claim
validation rule, a user validation rule), and prints both and their ratio, measured in the same run.
Signature verification is not included; later requests with the same token hit the cache and pay neither.

    .venv/bin/python bench/claim_mapping.py
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.model import Authenticated, JWTAuthenticatorSpec

ISSUER = "https://issuer.example"
ROUNDS = 7
TOKENS_PER_ROUND = 5000

CLAIMS_ONLY: dict[str, Any] = {
    "claimMappings": {
        "username": {"claim": "sub", "prefix": "oidc:"},
        "groups": {"claim": "groups", "prefix": "oidc:"},
    }
}
FIVE_EXPRESSIONS: dict[str, Any] = {
    "claimValidationRules": [{"expression": "claims.?tier.orValue('') == 'gold'"}],
    "claimMappings": {
        "username": {"expression": "'oidc:' + claims.sub"},
        "groups": {"expression": "claims.groups.map(g, 'oidc:' + g)"},
        "extra": [{"key": "example.com/tenant", "valueExpression": "claims.?tenant.orValue('')"}],
    },
    "userValidationRules": [{"expression": "!user.username.startsWith('oidc:x')"}],
}


def spec(entry: dict[str, Any]) -> JWTAuthenticatorSpec:
    jwt = {"issuer": {"url": ISSUER, "audiences": ["kubernetes"]}, **entry}
    document = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration", "jwt": [jwt]}
    [parsed] = parse_authentication_config(yaml.safe_dump(document)).authenticators
    return parsed


def seconds_per_token(mapping: JWTAuthenticatorSpec, claims: dict[str, Any], now: float) -> float:
    assert isinstance(user_from_claims(claims, mapping, now), Authenticated)
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(TOKENS_PER_ROUND):
            user_from_claims(claims, mapping, now)
        best = min(best, (time.perf_counter() - started) / TOKENS_PER_ROUND)
    return best


def main() -> None:
    now = time.time()
    claims = {
        "iss": ISSUER, "aud": "kubernetes", "exp": now + 600, "iat": now, "jti": "t-1", "sub": "alice",
        "email": "alice@example.com", "groups": ["dev", "ops", "sre"], "tier": "gold", "tenant": "acme",
    }  # fmt: skip
    baseline = seconds_per_token(spec(CLAIMS_ONLY), claims, now)
    with_cel = seconds_per_token(spec(FIVE_EXPRESSIONS), claims, now)
    print(f"claims and prefixes: {baseline * 1e6:6.1f} us per new token")
    added = (with_cel - baseline) * 1e6
    print(f"five CEL expressions: {with_cel * 1e6:6.1f} us per new token ({with_cel / baseline:.1f}x, +{added:.1f} us)")


if __name__ == "__main__":
    main()
