"""Identities, authentication outcomes, and the internal model of one JWT authenticator.

The legacy ``--oidc-*`` flags become one ``JWTAuthenticatorSpec``, the way kube-apiserver translates them;
an AuthenticationConfiguration file (``authconfig.py``) gives one per ``jwt`` entry. Everything downstream
only sees ``UserInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from kube_oidc_proxy.authn.cel import Program

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


class Failure(StrEnum):
    """Why a credential was refused, as a metric label. Chosen where the refusal is decided, never read back
    from the reason's text (which quotes claims and an admin's CEL)."""

    NO_TOKEN = "no_token"  # noqa: S105 - a label, not a secret
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_ALGORITHM = "bad_algorithm"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    KEYS_UNAVAILABLE = "keys_unavailable"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    SYSTEM_IDENTITY = "system_identity"
    REQUIRED_CLAIM = "required_claim"
    MISSING_USERNAME = "missing_username"
    UNVERIFIED_EMAIL = "unverified_email"
    CLAIM_MAPPING = "claim_mapping"  # --authentication-config username/groups/uid/extra expressions
    CLAIM_RULE = "claim_rule"
    USER_RULE = "user_rule"
    BAD_CLAIMS = "bad_claims"  # exp or nbf not numbers, groups not strings, identities kube-apiserver reads otherwise
    TOKEN_REVIEW_REJECTED = "token_review_rejected"  # noqa: S105
    TOKEN_REVIEW_ERROR = "token_review_error"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Rejected:
    """The credential is not acceptable. ``reason`` is for the log; ``message`` is safe to show."""

    failure: Failure
    reason: str
    message: str = "Unauthorized"
    code: int = 401


@dataclass(frozen=True, slots=True)
class NotMine:
    """No authenticator recognises the token (unknown issuer, not a JWT): another stage may try it."""

    failure: Failure
    reason: str


AuthResult = Authenticated | Rejected | NotMine


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """A claim (with a prefix, prepended verbatim) or a CEL expression: username, groups, uid."""

    claim: str = ""
    prefix: str = ""
    expression: Program | None = None


@dataclass(frozen=True, slots=True)
class ExtraMapping:
    key: str
    value: Program  # a string or a list of strings; "", [] and null mean no value


@dataclass(frozen=True, slots=True)
class ValidationRule:
    """A CEL expression that must be true (over ``claims`` or ``user``), and what to log when it is not."""

    expression: Program
    message: str = ""


@dataclass(frozen=True, slots=True)
class JWTAuthenticatorSpec:
    issuer_url: str
    audiences: tuple[str, ...]  # the token's aud must contain one of them (MatchAny)
    username: ClaimMapping
    groups: ClaimMapping | None = None
    uid: ClaimMapping | None = None
    extra: tuple[ExtraMapping, ...] = ()
    required_claims: tuple[tuple[str, str], ...] = ()  # claim = exact string value
    claim_rules: tuple[ValidationRule, ...] = ()
    user_rules: tuple[ValidationRule, ...] = ()
    signing_algs: frozenset[str] = frozenset({"RS256"})
    discovery_url: str | None = None
    ca_pem: bytes | None = None  # None: the system trust store

    @property
    def uses_cel(self) -> bool:
        mappings = (self.username, self.groups, self.uid)
        return bool(self.extra or self.claim_rules) or any(m is not None and m.expression is not None for m in mappings)
