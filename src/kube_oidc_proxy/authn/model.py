"""Identities, authentication outcomes, and the internal model of one JWT authenticator.

The legacy ``--oidc-*`` flags become one ``JWTAuthenticatorSpec``, the way kube-apiserver translates them;
an AuthenticationConfiguration file will produce several. Everything downstream only sees ``UserInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

# The extra key kube-apiserver adds for tokens with a ``jti`` (k8s.io/apiserver pkg/authentication/token/jwt).
CREDENTIAL_ID_EXTRA: Final = "authentication.kubernetes.io/credential-id"
SYSTEM_AUTHENTICATED: Final = "system:authenticated"
# RS/ES/PS 256/384/512: kube-apiserver's allow-list; HS* and none are never accepted.
SUPPORTED_SIGNING_ALGS: Final = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
)


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: UserInfo
    expires_at: float  # unix time after which the credential is no longer valid
    issuer: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The credential is not acceptable. ``reason`` is for the log; ``message`` is safe to show."""

    reason: str
    message: str = "Unauthorized"
    code: int = 401


@dataclass(frozen=True, slots=True)
class NotMine:
    """No authenticator recognises the token (unknown issuer, not a JWT): another stage may try it."""

    reason: str


AuthResult = Authenticated | Rejected | NotMine


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    claim: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class JWTAuthenticatorSpec:
    issuer_url: str
    audiences: tuple[str, ...]
    username: ClaimMapping
    groups: ClaimMapping | None = None
    required_claims: tuple[tuple[str, str], ...] = ()
    signing_algs: frozenset[str] = frozenset({"RS256"})
    discovery_url: str | None = None
    ca_pem: bytes | None = None  # None: the system trust store
