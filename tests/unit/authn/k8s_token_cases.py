"""kube-apiserver's JWT authenticator acceptance table (k8s.io/apiserver
plugin/pkg/authenticator/token/oidc/oidc_test.go TestToken, at commit 24a394e), as data.

Every case of ``TestToken`` is listed in source order as a :class:`TokenCase`: the JWTAuthenticator it configures
(``apiserver.config.k8s.io/v1`` camelCase form), the token payload, the keys, and the expected outcome. The runner
that consumes this module lives elsewhere; this module only states facts. Case names and expected error strings are
copied verbatim because they are what we test against.

Counts: 93 cases, 70 apply to this proxy, 23 are marked ``applies=False``.

By expected outcome (total, of which apply):
    success: 54 (47 apply)
    authn error: 24 (18 apply)
    init error: 12 (4 apply)
    health error: 2 (0 apply)
    skip: 1 (1 apply)

By category (see :data:`CATEGORIES`):
    basic username: 4 (4 apply)
    email / email_verified: 4 (4 apply)
    groups claim: 4 (4 apply)
    distributed/aggregated claims: 12 (0 apply)
    required claims (claim/requiredValue rules): 3 (3 apply)
    signature / expiry: 2 (2 apply)
    audience: 8 (8 apply)
    issuer routing: 2 (2 apply)
    prefixes: 2 (2 apply)
    signing algorithms: 4 (4 apply)
    init / config validation: 4 (2 apply)
    health check: 1 (0 apply)
    discoveryURL: 6 (5 apply)
    CEL mappings / validation: 25 (25 apply)
    egress selector: 7 (0 apply)
    jti / credential-id: 5 (5 apply)

Rendering conventions:

* ``authenticator``: only fields the Go case sets are present. ``ptr.To(x)`` is rendered as the plain value; a
  prefix explicitly set to ``""`` is kept as ``"prefix": ""``; an unset prefix is omitted. Keys are ordered as in
  the v1 API type (issuer, claimValidationRules, claimMappings, userValidationRules).
* ``claims``: the Go payload after its ``fmt.Sprintf`` (so ``exp``/``nbf`` are concrete integers, see
  :data:`VALID_UNIX`, :data:`EXPIRED_UNIX`, :data:`NOW_UNIX`), re-indented; JSON tokens and key order are verbatim.
  ``{{.URL}}`` placeholders are kept. ``None`` when the case builds no token.
* ``signing_alg``/``signing_key`` are ``""`` for cases whose Go struct has no signing key (they never sign a token).
  Fields equal to the dataclass defaults are omitted in :data:`CASES`.
* ``want_user`` always has the four keys username/uid/groups/extra; a field Go leaves unset is ``""``/``[]``/``{}``.
* ``{{.URL}}`` and ``{{.Expired}}`` may appear in ``want_err``/``want_init_err`` and must be substituted.
* ``legacy_required_claims`` is empty in every case: at 24a394e ``Options`` has no RequiredClaims field; the three
  "required claim" cases use ``claimValidationRules`` entries with ``claim``/``requiredValue`` (which is what the
  legacy ``--oidc-required-claim`` flag translates into).

Time: every case except "health check failure" (which never validates a token) sets ``Options.now`` to
2009-11-10T23:00:00Z (:data:`NOW_RFC3339`, unix :data:`NOW_UNIX`). ``valid`` = now + 1h (:data:`VALID_UNIX`),
``expired`` = now - 1h (:data:`EXPIRED_UNIX`). ``{{.Expired}}`` is Go's ``%v`` of ``time.Unix(EXPIRED_UNIX, 0)`` in
the local zone, i.e. :data:`EXPIRED_TEXT_UTC` when TZ=UTC. See :data:`VALIDATION_NOTE` for the harness details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NOW_RFC3339 = "2009-11-10T23:00:00Z"
NOW_UNIX = 1257894000
VALID_UNIX = NOW_UNIX + 3600  # 2009-11-11T00:00:00Z, the "exp" of every non-expired token
EXPIRED_UNIX = NOW_UNIX - 3600  # 2009-11-10T22:00:00Z
EXPIRED_TEXT_UTC = "2009-11-10 22:00:00 +0000 UTC"  # value of {{.Expired}} when the Go test runs with TZ=UTC
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"  # user.CredentialIDKey


@dataclass(frozen=True)
class TokenCase:
    name: str  # the Go case name, verbatim
    authenticator: dict[str, Any]  # JWTAuthenticator, apiserver.config.k8s.io/v1 camelCase form
    claims: str | None  # JSON payload template ({{.URL}} placeholders kept), None if the case has no token
    signing_alg: str = "RS256"  # alg of the signing key the case uses ("" = no signing key)
    signing_key: str = "rsa_1"  # testdata key name the token is signed with ("" = no signing key)
    pub_keys: tuple[str, ...] = ("rsa_1",)  # keys the verifier knows
    supported_signing_algs: tuple[str, ...] = ("RS256",)  # Options.SupportedSigningAlgs (Go default: RS256)
    legacy_required_claims: dict[str, str] = field(default_factory=dict)  # unused at 24a394e (see module doc)
    want_user: dict[str, Any] | None = None  # {"username", "uid", "groups", "extra"} as Go's want
    want_err: str | None = None  # exact Go error string from AuthenticateToken
    want_skip: bool = False  # AuthenticateToken returns (nil, false, nil)
    want_init_err: str | None = None  # exact Go error string from New()
    want_health_err_prefix: str | None = None  # prefix of HealthCheck() error
    applies: bool = True
    not_applicable: str = ""  # why, when applies is False


CASES: list[TokenCase] = [
    TokenCase(
        name="token",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="no-username",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "exp": 1257897600
        }""",
        want_err='oidc: parse username claims "username": claim not present',
    ),
    TokenCase(
        name="email",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "email", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "email": "jane@example.com",
            "email_verified": true,
            "exp": 1257897600
        }""",
        want_user={"username": "jane@example.com", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="email-not-verified",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "email", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "email": "jane@example.com",
            "email_verified": false,
            "exp": 1257897600
        }""",
        want_err="oidc: email not verified",
    ),
    TokenCase(
        name="no-email-verified-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "email", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "email": "jane@example.com",
            "exp": 1257897600
        }""",
        want_user={"username": "jane@example.com", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="invalid-email-verified-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "email", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "email": "jane@example.com",
            "email_verified": "false",
            "exp": 1257897600
        }""",
        want_err="oidc: parse 'email_verified' claim: json: cannot unmarshal string into Go value of type bool",
    ),
    TokenCase(
        name="groups",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1", "team2"], "extra": {}},
    ),
    TokenCase(
        name="groups-distributed",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1", "team2"], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed invalid client",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_err=(
            'oidc: could not expand distributed claims: while getting distributed claim "groups": Get '
            '"{{.URL}}/groups": some unexpected oidc error'
        ),
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy; "
            "also injects a Go-only Options.Client transport"
        ),
    ),
    TokenCase(
        name="groups-distributed-malformed-claim-names",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "nonexistent-claim-source"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_err="oidc: verify token: oidc: source does not exist",
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-malformed-names-and-sources",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "exp": 1257897600
        }""",
        want_err="oidc: verify token: oidc: source does not exist",
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-malformed-distributed-claim",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: could not expand distributed claims: jwt returned by distributed claim endpoint "
            '"{{.URL}}/groups" did not contain claim: groups'
        ),
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-unusual-name",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "rabbits", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "rabbits": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/rabbits",
                    "access_token": "rabbits_token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1", "team2"], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-wrong-audience",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: could not expand distributed claims: verify distributed claim token: oidc: expected "
            'audience "my-client" got ["your-client"]'
        ),
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-expired-token",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: could not expand distributed claims: verify distributed claim token: oidc: token is "
            "expired (Token Expiry: {{.Expired}})"
        ),
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="groups-distributed-normal-claim-wins",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "groups": "team1",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1"], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy "
            "(the expected user equals simply ignoring _claim_names/_claim_sources; runner may opt in)"
        ),
    ),
    TokenCase(
        name="group-string-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": "team1",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1"], "extra": {}},
    ),
    TokenCase(
        name="group-string-claim-distributed",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1"], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="group-string-claim-aggregated-not-supported",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "JWT": "some.jwt.token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy "
            "(the expected user equals simply ignoring _claim_names/_claim_sources; runner may opt in)"
        ),
    ),
    TokenCase(
        name="no-groups-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="invalid-groups-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": 42,
            "exp": 1257897600
        }""",
        want_err='oidc: parse groups claim "groups": json: cannot unmarshal number into Go value of type string',
    ),
    TokenCase(
        name="required-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"claim": "hd", "requiredValue": "example.com"},
                {"claim": "sub", "requiredValue": "test"},
            ],
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "hd": "example.com",
            "sub": "test",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="no-required-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [{"claim": "hd", "requiredValue": "example.com"}],
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err="oidc: required claim hd not present in ID token",
    ),
    TokenCase(
        name="invalid-required-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [{"claim": "hd", "requiredValue": "example.com"}],
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"claim": "groups", "prefix": ""},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "hd": "example.org",
            "exp": 1257897600
        }""",
        want_err="oidc: required claim hd value does not match. Got = example.org, want = example.com",
    ),
    TokenCase(
        name="invalid-signature",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        pub_keys=("rsa_2",),
        want_err="oidc: verify token: failed to verify signature: no keys matches jwk keyid",
    ),
    TokenCase(
        name="expired",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257890400
        }""",
        want_err="oidc: verify token: oidc: token is expired (Token Expiry: {{.Expired}})",
    ),
    TokenCase(
        name="invalid-aud",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err='oidc: verify token: oidc: expected audience "my-client" got ["not-my-client"]',
    ),
    TokenCase(
        name="multiple-audiences",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "not-my-client",
                "my-client"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="multiple-audiences in authentication config",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["random-client", "my-client"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "not-my-client",
                "my-client"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="multiple-audiences in authentication config, multiple matches",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["random-client", "my-client", "other-client"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "not-my-client",
                "my-client",
                "other-client"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="multiple-audiences in authentication config, no match",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["random-client", "my-client"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "not-my-client"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err='oidc: verify token: oidc: expected audience in ["my-client" "random-client"] got ["not-my-client"]',
    ),
    TokenCase(
        name="nuanced audience validation using claim validation rules",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["bar", "foo", "baz"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimValidationRules": [
                {
                    "expression": 'sets.equivalent(claims.aud, ["bar", "foo", "baz"])',
                    "message": "audience must exactly contain [bar, foo, baz]",
                }
            ],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "foo",
                "bar",
                "baz"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="audience validation using claim validation rules fails",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["bar", "foo", "baz"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimValidationRules": [
                {
                    "expression": 'sets.equivalent(claims.aud, ["bar", "foo", "baz"])',
                    "message": "audience must exactly contain [bar, foo, baz]",
                }
            ],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": [
                "foo",
                "baz"
            ],
            "azp": "not-my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: error evaluating claim validation expression: validation expression "
            '\'sets.equivalent(claims.aud, ["bar", "foo", "baz"])\' failed: audience must exactly '
            "contain [bar, foo, baz]"
        ),
    ),
    TokenCase(
        name="invalid-issuer",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_skip=True,
    ),
    TokenCase(
        name="username-prefix",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "oidc:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "oidc:jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="groups-prefix",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": "oidc:"},
                "groups": {"claim": "groups", "prefix": "groups:"},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600
        }""",
        want_user={"username": "oidc:jane", "uid": "", "groups": ["groups:team1", "groups:team2"], "extra": {}},
    ),
    TokenCase(
        name="groups-prefix-distributed",
        authenticator={
            "issuer": {"url": "{{.URL}}", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": "oidc:"},
                "groups": {"claim": "groups", "prefix": "groups:"},
            },
        },
        claims="""{
            "iss": "{{.URL}}",
            "aud": "my-client",
            "username": "jane",
            "_claim_names": {
                "groups": "src1"
            },
            "_claim_sources": {
                "src1": {
                    "endpoint": "{{.URL}}/groups",
                    "access_token": "groups_token"
                }
            },
            "exp": 1257897600
        }""",
        want_user={"username": "oidc:jane", "uid": "", "groups": ["groups:team1", "groups:team2"], "extra": {}},
        applies=False,
        not_applicable=(
            "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by this proxy"
        ),
    ),
    TokenCase(
        name="invalid-signing-alg",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        signing_alg="PS256",
        want_err=(
            'oidc: verify token: oidc: id token signed with unsupported algorithm, expected ["RS256"] got "PS256"'
        ),
    ),
    TokenCase(
        name="ps256",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        signing_alg="PS256",
        supported_signing_algs=("PS256",),
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="es512",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        signing_alg="ES512",
        signing_key="ecdsa_2",
        pub_keys=("ecdsa_1", "ecdsa_2"),
        supported_signing_algs=("ES512",),
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="not-https",
        authenticator={
            "issuer": {"url": "http://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        want_init_err='issuer.url: Invalid value: "http://auth.example.com": URL scheme must be https',
    ),
    TokenCase(
        name="no-username-claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"prefix": ""}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        want_init_err="claimMappings.username: Required value: claim or expression is required",
    ),
    TokenCase(
        name="invalid-sig-alg",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        supported_signing_algs=("HS256",),
        want_init_err='oidc: unsupported signing alg: "HS256"',
    ),
    TokenCase(
        name="client and ca mutually exclusive",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        want_init_err="oidc: Client and CAContentProvider are mutually exclusive",
        applies=False,
        not_applicable="Go-only Options fields: Client and CAContentProvider mutual exclusion",
    ),
    TokenCase(
        name="keyset and discovery URL mutually exclusive",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "discoveryURL": "https://auth.example.com/foo",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        want_init_err="oidc: KeySet and DiscoveryURL are mutually exclusive",
        applies=False,
        not_applicable="Go-only Options.KeySet (a static-keyset test hook) vs issuer.discoveryURL exclusivity",
    ),
    TokenCase(
        name="health check failure",
        authenticator={
            "issuer": {"url": "https://this-will-not-work.notatld", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims=None,
        signing_alg="",
        signing_key="",
        pub_keys=(),
        want_health_err_prefix=(
            'oidc: authenticator for issuer "https://this-will-not-work.notatld" is not healthy: Get '
            '"https://this-will-not-work.notatld/.well-known/openid-configuration": dial tcp: lookup '
            "this-will-not-work.notatld"
        ),
        applies=False,
        not_applicable=(
            "tests Go's asynchronous provider init / HealthCheck() polling (and relies on DNS failure for .notatld)"
        ),
    ),
    TokenCase(
        name="accounts.google.com issuer",
        authenticator={
            "issuer": {"url": "https://accounts.google.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "email", "prefix": ""}},
        },
        claims="""{
            "iss": "accounts.google.com",
            "email": "thomas.jefferson@gmail.com",
            "aud": "my-client",
            "exp": 1257897600
        }""",
        want_user={"username": "thomas.jefferson@gmail.com", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="good token with bad client id",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "prefix:"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-wrong-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err='oidc: verify token: oidc: expected audience "my-client" got ["my-wrong-client"]',
    ),
    TokenCase(
        name="user validation rule fails for user.username",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"claim": "username", "prefix": "system:"}},
            "userValidationRules": [
                {
                    "expression": "!user.username.startsWith('system:')",
                    "message": "username cannot used reserved system: prefix",
                }
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: error evaluating user info validation rule: validation expression "
            "'!user.username.startsWith('system:')' failed: username cannot used reserved system: prefix"
        ),
    ),
    TokenCase(
        name="user validation rule fails for user.groups",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"claim": "groups", "prefix": "system:"},
            },
            "userValidationRules": [
                {
                    "expression": "user.groups.all(group, !group.startsWith('system:'))",
                    "message": "groups cannot used reserved system: prefix",
                }
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "groups": [
                "team1",
                "team2"
            ]
        }""",
        want_err=(
            "oidc: error evaluating user info validation rule: validation expression 'user.groups.all(group, "
            "!group.startsWith('system:'))' failed: groups cannot used reserved system: prefix"
        ),
    ),
    TokenCase(
        name="claim validation rule with expression fails",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": 'claims.hd == "example.com"', "message": "hd claim must be example.com"}
            ],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_err=(
            "oidc: error evaluating claim validation expression: expression 'claims.hd == \"example.com\"' "
            "resulted in error: no such key: hd"
        ),
    ),
    TokenCase(
        name="claim validation rule with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": 'claims.hd == "example.com"', "message": "hd claim must be example.com"}
            ],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "hd": "example.com"
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="claim validation rule with expression and nested claims",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [{"expression": 'claims.foo.bar == "baz"', "message": "foo.bar claim must be baz"}],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "hd": "example.com",
            "foo": {
                "bar": "baz"
            }
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="claim validation rule with mix of expression and claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": 'claims.foo.bar == "baz"', "message": "foo.bar claim must be baz"},
                {"claim": "hd", "requiredValue": "example.com"},
            ],
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "hd": "example.com",
            "foo": {
                "bar": "baz"
            }
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="username claim mapping with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="username claim mapping with expression and nested claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.foo.username"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "foo": {
                "username": "jane"
            }
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="claim mappings with expressions and deeply nested claim - success",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": "claims.turtle.foo.other1.bit1 && !claims.turtle.foo.bar.other1.bit2"}
            ],
            "claimMappings": {
                "username": {"expression": "claims.turtle.foo.bar.baz.panda[0]"},
                "groups": {"expression": "claims.turtle.foo.bar.baz.panda"},
                "uid": {"expression": "claims.turtle.foo.bar.baz.panda[1]"},
                "extra": [
                    {"key": "bio.snorlax.org/1", "valueExpression": "string(claims.turtle.foo.bar.other1.bit2)"},
                    {"key": "bio.snorlax.org/2", "valueExpression": "string(claims.turtle.foo.bar.baz.other1.bit3)"},
                    {
                        "key": "bio.snorlax.org/3",
                        "valueExpression": "[string(claims.turtle.foo.bar.baz.other1.bit1)] + ['a', 'b', 'c']",
                    },
                ],
            },
            "userValidationRules": [
                {"expression": 'user.username != "bad"'},
                {"expression": 'user.uid == "007"'},
                {"expression": '"claus" in user.groups'},
                {"expression": "user.extra.bio__dot__snorlax__dot__org__slash__3.size() == 4"},
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "exp": 1257897600,
            "turtle": {
                "foo": {
                    "1": "a",
                    "2": "b",
                    "other1": {
                        "bit1": true,
                        "bit2": false,
                        "bit3": 1
                    },
                    "bar": {
                        "3": "c",
                        "4": "d",
                        "other1": {
                            "bit1": true,
                            "bit2": false,
                            "bit3": 1
                        },
                        "baz": {
                            "5": "e",
                            "6": "f",
                            "panda": [
                                "snorlax",
                                "007",
                                "santa",
                                "claus"
                            ],
                            "other1": {
                                "bit1": true,
                                "bit2": false,
                                "bit3": 1
                            }
                        }
                    }
                }
            }
        }""",
        want_user={
            "username": "snorlax",
            "uid": "007",
            "groups": ["snorlax", "007", "santa", "claus"],
            "extra": {
                "bio.snorlax.org/1": ["false"],
                "bio.snorlax.org/2": ["1"],
                "bio.snorlax.org/3": ["true", "a", "b", "c"],
            },
        },
    ),
    TokenCase(
        name="claim mappings with expressions and deeply nested claim - success via optional",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": "claims.turtle.foo.other1.bit1 && !claims.turtle.foo.bar.other1.bit2"}
            ],
            "claimMappings": {
                "username": {"expression": "claims.turtle.foo.bar.baz.panda[0]"},
                "groups": {"expression": "claims.turtle.foo.bar.baz.?a.b.c.d.orValue([ 'claus' ])"},
                "uid": {"expression": "claims.turtle.foo.bar.baz.panda[1]"},
                "extra": [
                    {"key": "bio.snorlax.org/1", "valueExpression": "string(claims.turtle.foo.bar.other1.bit2)"},
                    {"key": "bio.snorlax.org/2", "valueExpression": "string(claims.turtle.foo.bar.baz.other1.bit3)"},
                    {
                        "key": "bio.snorlax.org/3",
                        "valueExpression": "[string(claims.turtle.foo.bar.baz.other1.bit1)] + ['a', 'b', 'c']",
                    },
                ],
            },
            "userValidationRules": [
                {"expression": 'user.username != "bad"'},
                {"expression": 'user.uid == "007"'},
                {"expression": '"claus" in user.groups'},
                {"expression": "user.extra.bio__dot__snorlax__dot__org__slash__3.size() == 4"},
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "exp": 1257897600,
            "turtle": {
                "foo": {
                    "1": "a",
                    "2": "b",
                    "other1": {
                        "bit1": true,
                        "bit2": false,
                        "bit3": 1
                    },
                    "bar": {
                        "3": "c",
                        "4": "d",
                        "other1": {
                            "bit1": true,
                            "bit2": false,
                            "bit3": 1
                        },
                        "baz": {
                            "5": "e",
                            "6": "f",
                            "panda": [
                                "snorlax",
                                "007",
                                "santa",
                                "claus"
                            ],
                            "other1": {
                                "bit1": true,
                                "bit2": false,
                                "bit3": 1
                            }
                        }
                    }
                }
            }
        }""",
        want_user={
            "username": "snorlax",
            "uid": "007",
            "groups": ["claus"],
            "extra": {
                "bio.snorlax.org/1": ["false"],
                "bio.snorlax.org/2": ["1"],
                "bio.snorlax.org/3": ["true", "a", "b", "c"],
            },
        },
    ),
    TokenCase(
        name="claim mappings with expressions and deeply nested claim - failure without optional",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": "claims.turtle.foo.other1.bit1 && !claims.turtle.foo.bar.other1.bit2"}
            ],
            "claimMappings": {
                "username": {"expression": "claims.turtle.foo.bar.baz.panda[0]"},
                "groups": {"expression": "claims.turtle.foo.bar.baz.a.b.c.d"},
                "uid": {"expression": "claims.turtle.foo.bar.baz.panda[1]"},
                "extra": [
                    {"key": "bio.snorlax.org/1", "valueExpression": "string(claims.turtle.foo.bar.other1.bit2)"},
                    {"key": "bio.snorlax.org/2", "valueExpression": "string(claims.turtle.foo.bar.baz.other1.bit3)"},
                    {
                        "key": "bio.snorlax.org/3",
                        "valueExpression": "[string(claims.turtle.foo.bar.baz.other1.bit1)] + ['a', 'b', 'c']",
                    },
                ],
            },
            "userValidationRules": [
                {"expression": 'user.username != "bad"'},
                {"expression": 'user.uid == "007"'},
                {"expression": '"claus" in user.groups'},
                {"expression": "user.extra.bio__dot__snorlax__dot__org__slash__3.size() == 4"},
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "exp": 1257897600,
            "turtle": {
                "foo": {
                    "1": "a",
                    "2": "b",
                    "other1": {
                        "bit1": true,
                        "bit2": false,
                        "bit3": 1
                    },
                    "bar": {
                        "3": "c",
                        "4": "d",
                        "other1": {
                            "bit1": true,
                            "bit2": false,
                            "bit3": 1
                        },
                        "baz": {
                            "5": "e",
                            "6": "f",
                            "panda": [
                                "snorlax",
                                "007",
                                "santa",
                                "claus"
                            ],
                            "other1": {
                                "bit1": true,
                                "bit2": false,
                                "bit3": 1
                            }
                        }
                    }
                }
            }
        }""",
        want_err=(
            "oidc: error evaluating group claim expression: expression 'claims.turtle.foo.bar.baz.a.b.c.d' "
            "resulted in error: no such key: a"
        ),
    ),
    TokenCase(
        name="claim mappings with expressions and deeply nested claim - success - service account payload",
        authenticator={
            "issuer": {"url": "https://kubernetes.default.svc", "audiences": ["https://kubernetes.default.svc"]},
            "claimValidationRules": [
                {
                    "expression": (
                        'claims.sub == ("system:serviceaccount:" + claims.kubernetes__dot__io.namespace + '
                        '":" + claims.kubernetes__dot__io.serviceaccount.name)'
                    )
                },
                {"expression": "has(claims.kubernetes__dot__io.pod.uid)"},
                {"expression": 'claims["kubernetes.io"]["node"]["uid"] != ""'},
                {"expression": 'claims[?"kubernetes.io"]["node"]["ip"].orValue(true)'},
            ],
            "claimMappings": {
                "username": {
                    "expression": (
                        '"system:serviceaccount:" + claims.kubernetes__dot__io.namespace + ":" + '
                        "claims.kubernetes__dot__io.serviceaccount.name"
                    )
                },
                "groups": {
                    "expression": (
                        '[ "system:serviceaccounts", "system:serviceaccounts:" + claims.kubernetes__dot__io.namespace ]'
                    )
                },
                "uid": {"expression": "claims.kubernetes__dot__io.serviceaccount.uid"},
                "extra": [
                    {
                        "key": "authentication.x-kubernetes.io/pod-name",
                        "valueExpression": "claims.kubernetes__dot__io.pod.name",
                    },
                    {
                        "key": "authentication.x-kubernetes.io/pod-uid",
                        "valueExpression": "claims.kubernetes__dot__io.pod.uid",
                    },
                    {
                        "key": "authentication.x-kubernetes.io/node-name",
                        "valueExpression": "claims.kubernetes__dot__io.node.name",
                    },
                    {
                        "key": "authentication.x-kubernetes.io/node-uid",
                        "valueExpression": "claims.kubernetes__dot__io.node.uid",
                    },
                    {"key": "authentication.x-kubernetes.io/credential-id", "valueExpression": '"JTI=" + claims.jti'},
                    {
                        "key": "test.x-kubernetes.io/warnafter",
                        "valueExpression": "string(int(claims.kubernetes__dot__io.warnafter))",
                    },
                    {
                        "key": "test.x-kubernetes.io/namespace",
                        "valueExpression": "claims.kubernetes__dot__io.namespace",
                    },
                ],
            },
            "userValidationRules": [
                {
                    "expression": (
                        'user.username.startsWith("system:serviceaccount:" + '
                        'user.extra["test.x-kubernetes.io/namespace"][0] + ":")'
                    )
                },
                {"expression": 'user.uid != ""'},
                {"expression": '"system:serviceaccounts" in user.groups && user.groups.size() == 2'},
                {
                    "expression": (
                        "user.extra.authentication__dot__x__dash__kubernetes__dot__io__slash__node__dash__name[0] "
                        '== "127.0.0.1"'
                    )
                },
                {
                    "expression": (
                        "user.extra.authentication__dot__x__dash__kubernetes__dot__io__slash__credential__dash__id[0] "
                        "== "
                        "user.extra.authentication__dot__kubernetes__dot__io__slash__credential__dash__id[0]"
                    )
                },
                {"expression": 'user.extra["test.x-kubernetes.io/warnafter"][0] == "1700081020"'},
                {
                    "expression": (
                        "has(user.extra.authentication__dot__x__dash__kubernetes__dot__io__slash__pod__dash__name)"
                    )
                },
                {"expression": 'user.extra[?"test.x-kubernetes.io/missing"].orValue([]) == []'},
            ],
        },
        claims="""{
            "aud": [
                "https://kubernetes.default.svc"
            ],
            "exp": 1257897600,
            "iat": 1700077413,
            "iss": "https://kubernetes.default.svc",
            "jti": "ea28ed49-2e11-4280-9ec5-bc3d1d84661a",
            "kubernetes.io": {
                "namespace": "kube-system",
                "node": {
                    "name": "127.0.0.1",
                    "uid": "58456cb0-dd00-45ed-b797-5578fdceaced"
                },
                "pod": {
                    "name": "coredns-69cbfb9798-jv9gn",
                    "uid": "778a530c-b3f4-47c0-9cd5-ab018fb64f33"
                },
                "serviceaccount": {
                    "name": "coredns",
                    "uid": "a087d5a0-e1dd-43ec-93ac-f13d89cd13af"
                },
                "warnafter": 1700081020
            },
            "nbf": 1257894000,
            "sub": "system:serviceaccount:kube-system:coredns"
        }""",
        want_user={
            "username": "system:serviceaccount:kube-system:coredns",
            "uid": "a087d5a0-e1dd-43ec-93ac-f13d89cd13af",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system"],
            "extra": {
                "authentication.x-kubernetes.io/pod-name": ["coredns-69cbfb9798-jv9gn"],
                "authentication.x-kubernetes.io/pod-uid": ["778a530c-b3f4-47c0-9cd5-ab018fb64f33"],
                "authentication.x-kubernetes.io/node-name": ["127.0.0.1"],
                "authentication.x-kubernetes.io/node-uid": ["58456cb0-dd00-45ed-b797-5578fdceaced"],
                "authentication.kubernetes.io/credential-id": ["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"],
                "authentication.x-kubernetes.io/credential-id": ["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"],
                "test.x-kubernetes.io/warnafter": ["1700081020"],
                "test.x-kubernetes.io/namespace": ["kube-system"],
            },
        },
    ),
    TokenCase(
        name=(
            "claim mappings with expressions and deeply nested claim - success - claims payload with deep "
            "use of __dot__"
        ),
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimValidationRules": [
                {"expression": "has(claims.turtle.foo.bar.baz.username__dot__io)"},
                {"expression": "has(claims.turtle.foo.bar.baz.link[0].uid__dot__io)"},
                {"expression": "has(claims.data[0].groups__dot__io)"},
                {"expression": 'claims.turtle.foo.bar.bee.username__dot__io.company__dot__io == "fun-corp"'},
            ],
            "claimMappings": {
                "username": {"expression": "claims.turtle.foo.bar.baz.username__dot__io"},
                "groups": {"expression": "claims.data[0].groups__dot__io"},
                "uid": {"expression": "claims.turtle.foo.bar.baz.link[0].uid__dot__io"},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "exp": 1257897600,
            "data": [
                {
                    "groups.io": "gen1"
                }
            ],
            "turtle": {
                "foo": {
                    "1": "a",
                    "2": "b",
                    "other1": {
                        "bit1": true,
                        "bit2": false,
                        "bit3": 1
                    },
                    "bar": {
                        "3": "c",
                        "4": "d",
                        "other1": {
                            "bit1": true,
                            "bit2": false,
                            "bit3": 1
                        },
                        "bee": {
                            "username.io": {
                                "company.io": "fun-corp"
                            }
                        },
                        "baz": {
                            "5": "e",
                            "6": "f",
                            "panda": [
                                "snorlax",
                                "007",
                                "santa",
                                "claus"
                            ],
                            "other1": {
                                "bit1": true,
                                "bit2": false,
                                "bit3": 1
                            },
                            "username.io": "snorlax.io",
                            "link": [
                                {
                                    "uid.io": "143"
                                }
                            ]
                        }
                    }
                }
            }
        }""",
        want_user={"username": "snorlax.io", "uid": "143", "groups": ["gen1"], "extra": {}},
    ),
    TokenCase(
        name="groups claim mapping with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}, "groups": {"expression": "claims.groups"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": ["team1", "team2"], "extra": {}},
    ),
    TokenCase(
        name="groups claim with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": "oidc:"},
                "groups": {
                    "expression": (
                        '(claims.roles.split(",") + claims.other_roles.split(",")).map(role, "groups:" + role)'
                    )
                },
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "roles": "foo,bar",
            "other_roles": "baz,qux",
            "exp": 1257897600
        }""",
        want_user={
            "username": "oidc:jane",
            "uid": "",
            "groups": ["groups:foo", "groups:bar", "groups:baz", "groups:qux"],
            "extra": {},
        },
    ),
    TokenCase(
        name="uid claim mapping with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234"
        }""",
        want_user={"username": "jane", "uid": "1234", "groups": ["team1", "team2"], "extra": {}},
    ),
    TokenCase(
        name="uid claim mapping with claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"claim": "uid"},
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234"
        }""",
        want_user={"username": "jane", "uid": "1234", "groups": ["team1", "team2"], "extra": {}},
    ),
    TokenCase(
        name="extra claim mapping with expression",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_user={
            "username": "jane",
            "uid": "1234",
            "groups": ["team1", "team2"],
            "extra": {"example.org/foo": ["bar"], "example.org/bar": ["baz", "qux"]},
        },
    ),
    TokenCase(
        name="extra claim mapping, value derived from claim value",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "extra": [
                    {
                        "key": "example.org/admin",
                        "valueExpression": '(has(claims.is_admin) && claims.is_admin) ? "true":""',
                    },
                    {
                        "key": "example.org/admin_1",
                        "valueExpression": 'claims.?is_admin.orValue(false) == true ? "true":""',
                    },
                    {
                        "key": "example.org/non_existent",
                        "valueExpression": 'claims.?non_existent.orValue("default") == "default" ? "true":""',
                    },
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "is_admin": true
        }""",
        want_user={
            "username": "jane",
            "uid": "",
            "groups": [],
            "extra": {
                "example.org/admin": ["true"],
                "example.org/admin_1": ["true"],
                "example.org/non_existent": ["true"],
            },
        },
    ),
    TokenCase(
        name="hardcoded extra claim mapping",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "extra": [{"key": "example.org/admin", "valueExpression": '"true"'}],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "is_admin": true
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {"example.org/admin": ["true"]}},
    ),
    TokenCase(
        name="extra claim mapping, multiple expressions for same key",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                    {"key": "example.org/foo", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err='claimMappings.extra[2].key: Duplicate value: "example.org/foo"',
    ),
    TokenCase(
        name="disallowed issuer via configured value",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err=(
            'issuer.url: Invalid value: "https://auth.example.com": URL must not overlap with disallowed '
            "issuers: [https://auth.example.com]"
        ),
        applies=False,
        not_applicable=(
            "Go-only Options.DisallowedIssuers (kube-apiserver's service-account issuer list); a proxy has none"
        ),
    ),
    TokenCase(
        name="invalid egress type",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"], "egressSelectorType": "etcd"},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err=(
            'issuer.egressSelectorType: Invalid value: "etcd": egress selector must be either controlplane or cluster'
        ),
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with error",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"], "egressSelectorType": "cluster"},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err='oidc: egress lookup for "cluster" failed: always fail, saw type "cluster"',
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with error - again",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["my-client"],
                "egressSelectorType": "controlplane",
            },
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err='oidc: egress lookup for "controlplane" failed: always fail, saw type "controlplane"',
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with no egress config",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["my-client"],
                "egressSelectorType": "controlplane",
            },
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err='oidc: egress lookup required with egress selector type "controlplane"',
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with no egress config for the given type",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["my-client"],
                "egressSelectorType": "controlplane",
            },
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_init_err='oidc: egress lookup for "controlplane" is not configured',
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with broken dialer",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "audiences": ["my-client"],
                "egressSelectorType": "controlplane",
            },
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims=None,
        signing_alg="",
        signing_key="",
        pub_keys=(),
        want_health_err_prefix=(
            'oidc: authenticator for issuer "https://auth.example.com" is not healthy: Get '
            '"https://auth.example.com/.well-known/openid-configuration": broken dialer'
        ),
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="valid egress type with working dialer",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "discoveryURL": "{{.URL}}/.well-known/openid-configuration",
                "audiences": ["my-client"],
                "egressSelectorType": "cluster",
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
        applies=False,
        not_applicable=(
            "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy"
        ),
    ),
    TokenCase(
        name="extra claim mapping, empty string value for key",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "foo": "",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_user={
            "username": "jane",
            "uid": "1234",
            "groups": ["team1", "team2"],
            "extra": {"example.org/bar": ["baz", "qux"]},
        },
    ),
    TokenCase(
        name="extra claim mapping with user validation rule succeeds",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "uid": {"expression": "claims.uid"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "'bar'"},
                    {"key": "example.org/baz", "valueExpression": "claims.baz"},
                ],
            },
            "userValidationRules": [
                {
                    "expression": "'bar' in user.extra['example.org/foo'] && 'qux' in user.extra['example.org/baz']",
                    "message": "example.org/foo must be bar and example.org/baz must be qux",
                }
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": [
                "team1",
                "team2"
            ],
            "exp": 1257897600,
            "uid": "1234",
            "baz": "qux"
        }""",
        want_user={
            "username": "jane",
            "uid": "1234",
            "groups": ["team1", "team2"],
            "extra": {"example.org/foo": ["bar"], "example.org/baz": ["qux"]},
        },
    ),
    TokenCase(
        name="groups expression returns null",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}, "groups": {"expression": "claims.groups"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "groups": null,
            "exp": 1257897600,
            "uid": "1234",
            "baz": "qux"
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="test user validation rule doesn't fail when user info is empty except username",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}, "groups": {"expression": "claims.groups"}},
            "userValidationRules": [
                {"expression": 'user.username == " "', "message": "username must be single space"},
                {"expression": 'user.uid == ""', "message": "uid must be empty string"},
                {"expression": "!('bar' in user.groups)", "message": "groups must not contain bar"},
                {"expression": "!('bar' in user.extra)", "message": "extra must not contain bar"},
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": " ",
            "groups": null,
            "exp": 1257897600,
            "baz": "qux"
        }""",
        want_user={"username": " ", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="empty username is allowed via claim",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"claim": "username", "prefix": ""},
                "groups": {"expression": "claims.groups"},
            },
            "userValidationRules": [
                {"expression": 'user.username == ""', "message": "username must be empty string"},
                {"expression": 'user.uid == ""', "message": "uid must be empty string"},
                {"expression": "!('bar' in user.groups)", "message": "groups must not contain bar"},
                {"expression": "!('bar' in user.extra)", "message": "extra must not contain bar"},
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "",
            "groups": null,
            "exp": 1257897600,
            "baz": "qux"
        }""",
        want_user={"username": "", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="minimum valid jwt payload",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.user"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "user": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="discovery-url",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "discoveryURL": "{{.URL}}/.well-known/openid-configuration",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="discovery url, issuer has a path",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com/a/b/foo",
                "discoveryURL": "{{.URL}}/.well-known/openid-configuration",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com/a/b/foo",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="discovery url has a path, issuer url has no path",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com",
                "discoveryURL": "{{.URL}}/c/d/bar/.well-known/openid-configuration",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="discovery url and issuer url have paths",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com/a/b/foo",
                "discoveryURL": "{{.URL}}/c/d/bar/.well-known/openid-configuration",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com/a/b/foo",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="discovery url and issuer url have paths, issuer url has trailing slash",
        authenticator={
            "issuer": {
                "url": "https://auth.example.com/a/b/foo/",
                "discoveryURL": "{{.URL}}/c/d/bar/.well-known/openid-configuration",
                "audiences": ["my-client"],
            },
            "claimMappings": {"username": {"claim": "username", "prefix": ""}},
        },
        claims="""{
            "iss": "https://auth.example.com/a/b/foo/",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="credential id set in extra even when no extra claim mappings are defined",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "jti": "1234"
        }""",
        want_user={
            "username": "jane",
            "uid": "",
            "groups": [],
            "extra": {"authentication.kubernetes.io/credential-id": ["JTI=1234"]},
        },
    ),
    TokenCase(
        name="credential id set in extra when extra claim mappings are defined",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {
                "username": {"expression": "claims.username"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.foo"},
                    {"key": "example.org/bar", "valueExpression": "claims.bar"},
                ],
            },
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "jti": "1234",
            "foo": "bar",
            "bar": [
                "baz",
                "qux"
            ]
        }""",
        want_user={
            "username": "jane",
            "uid": "",
            "groups": [],
            "extra": {
                "authentication.kubernetes.io/credential-id": ["JTI=1234"],
                "example.org/foo": ["bar"],
                "example.org/bar": ["baz", "qux"],
            },
        },
    ),
    TokenCase(
        name="non-string jti claim does not set credential id in extra or error",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "jti": 1234
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="missing jti claim does not set credential id in extra or error",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}},
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600
        }""",
        want_user={"username": "jane", "uid": "", "groups": [], "extra": {}},
    ),
    TokenCase(
        name="using credential id and user validation rule to simulate revocation",
        authenticator={
            "issuer": {"url": "https://auth.example.com", "audiences": ["my-client"]},
            "claimMappings": {"username": {"expression": "claims.username"}},
            "userValidationRules": [
                {
                    "expression": (
                        "!(user.extra[?'authentication.kubernetes.io/credential-id'][0].orValue('') in "
                        '["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"])'
                    ),
                    "message": "credential is revoked",
                }
            ],
        },
        claims="""{
            "iss": "https://auth.example.com",
            "aud": "my-client",
            "username": "jane",
            "exp": 1257897600,
            "jti": "ea28ed49-2e11-4280-9ec5-bc3d1d84661a"
        }""",
        want_err=(
            "oidc: error evaluating user info validation rule: validation expression "
            "'!(user.extra[?'authentication.kubernetes.io/credential-id'][0].orValue('') in "
            '["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"])\' failed: credential is revoked'
        ),
    ),
]

# Discovery documents served by the test server (at /.well-known/openid-configuration and at
# /c/d/bar/.well-known/openid-configuration) for the cases that set Go's openIDConfig; {{.URL}} kept.
OPENID_CONFIGS: dict[str, str] = {
    "groups-distributed": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed invalid client": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-malformed-claim-names": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-malformed-names-and-sources": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-malformed-distributed-claim": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-unusual-name": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-wrong-audience": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-expired-token": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-distributed-normal-claim-wins": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "group-string-claim-distributed": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "groups-prefix-distributed": '{"issuer": "{{.URL}}", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "valid egress type with working dialer": (
        '{"issuer": "https://auth.example.com", "jwks_uri": "{{.URL}}/.testing/keys"}'
    ),
    "discovery-url": '{"issuer": "https://auth.example.com", "jwks_uri": "{{.URL}}/.testing/keys"}',
    "discovery url, issuer has a path": (
        '{"issuer": "https://auth.example.com/a/b/foo", "jwks_uri": "{{.URL}}/.testing/keys"}'
    ),
    "discovery url has a path, issuer url has no path": (
        '{"issuer": "https://auth.example.com", "jwks_uri": "{{.URL}}/.testing/keys"}'
    ),
    "discovery url and issuer url have paths": (
        '{"issuer": "https://auth.example.com/a/b/foo", "jwks_uri": "{{.URL}}/.testing/keys"}'
    ),
    "discovery url and issuer url have paths, issuer url has trailing slash": (
        '{"issuer": "https://auth.example.com/a/b/foo/", "jwks_uri": "{{.URL}}/.testing/keys"}'
    ),
}

# Distributed-claim endpoint responses (claim name -> JSON payload the server signs with the case's signing key).
# Only used by distributed-claims cases, all of which are applies=False.
DISTRIBUTED_CLAIM_RESPONSES: dict[str, dict[str, str]] = {
    "groups-distributed": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed invalid client": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed-malformed-claim-names": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed-malformed-names-and-sources": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed-malformed-distributed-claim": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "exp": 1257897600}'
    },
    "groups-distributed-unusual-name": {
        "rabbits": '{"iss": "{{.URL}}", "aud": "my-client", "rabbits": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed-wrong-audience": {
        "groups": '{"iss": "{{.URL}}", "aud": "your-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
    "groups-distributed-expired-token": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257890400}'
    },
    "groups-distributed-normal-claim-wins": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team2"], "exp": 1257897600}'
    },
    "group-string-claim-distributed": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": "team1", "exp": 1257897600}'
    },
    "groups-prefix-distributed": {
        "groups": '{"iss": "{{.URL}}", "aud": "my-client", "groups": ["team1", "team2"], "exp": 1257897600}'
    },
}

# Cases with fetchKeysFromRemote=true: the verifier discovers and fetches JWKS over HTTPS instead of being given a
# static key set.
FETCH_KEYS_FROM_REMOTE: tuple[str, ...] = (
    "health check failure",
    "valid egress type with broken dialer",
    "valid egress type with working dialer",
    "discovery-url",
    "discovery url, issuer has a path",
    "discovery url has a path, issuer url has no path",
    "discovery url and issuer url have paths",
    "discovery url and issuer url have paths, issuer url has trailing slash",
)

# JWK "alg" of each public key, for cases where it is not RS256 (pub_keys order). Matters only when serving a JWKS.
PUB_KEY_ALGS: dict[str, tuple[str, ...]] = {"ps256": ("PS256",), "es512": ("ES512", "ES512")}

# Category -> case names (each case in exactly one category).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "basic username": ("token", "no-username", "empty username is allowed via claim", "minimum valid jwt payload"),
    "email / email_verified": (
        "email",
        "email-not-verified",
        "no-email-verified-claim",
        "invalid-email-verified-claim",
    ),
    "groups claim": ("groups", "group-string-claim", "no-groups-claim", "invalid-groups-claim"),
    "distributed/aggregated claims": (
        "groups-distributed",
        "groups-distributed invalid client",
        "groups-distributed-malformed-claim-names",
        "groups-distributed-malformed-names-and-sources",
        "groups-distributed-malformed-distributed-claim",
        "groups-distributed-unusual-name",
        "groups-distributed-wrong-audience",
        "groups-distributed-expired-token",
        "groups-distributed-normal-claim-wins",
        "group-string-claim-distributed",
        "group-string-claim-aggregated-not-supported",
        "groups-prefix-distributed",
    ),
    "required claims (claim/requiredValue rules)": ("required-claim", "no-required-claim", "invalid-required-claim"),
    "signature / expiry": ("invalid-signature", "expired"),
    "audience": (
        "invalid-aud",
        "multiple-audiences",
        "multiple-audiences in authentication config",
        "multiple-audiences in authentication config, multiple matches",
        "multiple-audiences in authentication config, no match",
        "nuanced audience validation using claim validation rules",
        "audience validation using claim validation rules fails",
        "good token with bad client id",
    ),
    "issuer routing": ("invalid-issuer", "accounts.google.com issuer"),
    "prefixes": ("username-prefix", "groups-prefix"),
    "signing algorithms": ("invalid-signing-alg", "ps256", "es512", "invalid-sig-alg"),
    "init / config validation": (
        "not-https",
        "no-username-claim",
        "client and ca mutually exclusive",
        "disallowed issuer via configured value",
    ),
    "health check": ("health check failure",),
    "discoveryURL": (
        "keyset and discovery URL mutually exclusive",
        "discovery-url",
        "discovery url, issuer has a path",
        "discovery url has a path, issuer url has no path",
        "discovery url and issuer url have paths",
        "discovery url and issuer url have paths, issuer url has trailing slash",
    ),
    "CEL mappings / validation": (
        "user validation rule fails for user.username",
        "user validation rule fails for user.groups",
        "claim validation rule with expression fails",
        "claim validation rule with expression",
        "claim validation rule with expression and nested claims",
        "claim validation rule with mix of expression and claim",
        "username claim mapping with expression",
        "username claim mapping with expression and nested claim",
        "claim mappings with expressions and deeply nested claim - success",
        "claim mappings with expressions and deeply nested claim - success via optional",
        "claim mappings with expressions and deeply nested claim - failure without optional",
        "claim mappings with expressions and deeply nested claim - success - service account payload",
        ("claim mappings with expressions and deeply nested claim - success - claims payload with deep use of __dot__"),
        "groups claim mapping with expression",
        "groups claim with expression",
        "uid claim mapping with expression",
        "uid claim mapping with claim",
        "extra claim mapping with expression",
        "extra claim mapping, value derived from claim value",
        "hardcoded extra claim mapping",
        "extra claim mapping, multiple expressions for same key",
        "extra claim mapping, empty string value for key",
        "extra claim mapping with user validation rule succeeds",
        "groups expression returns null",
        "test user validation rule doesn't fail when user info is empty except username",
    ),
    "egress selector": (
        "invalid egress type",
        "valid egress type with error",
        "valid egress type with error - again",
        "valid egress type with no egress config",
        "valid egress type with no egress config for the given type",
        "valid egress type with broken dialer",
        "valid egress type with working dialer",
    ),
    "jti / credential-id": (
        "credential id set in extra even when no extra claim mappings are defined",
        "credential id set in extra when extra claim mappings are defined",
        "non-string jti claim does not set credential id in extra or error",
        "missing jti claim does not set credential id in extra or error",
        "using credential id and user validation rule to simulate revocation",
    ),
}

VALIDATION_NOTE = """\
Harness behaviours of Go's TestToken that a runner must reproduce (k8s.io/apiserver@24a394e):

1. Keys. testdata/{rsa_1,rsa_2,ecdsa_1,ecdsa_2}.pem next to oidc_test.go (RSA keys are PKCS#1 "RSA PRIVATE KEY",
   EC keys are SEC1 "EC PRIVATE KEY"; the verifier gets the public halves). Every JWK has use="sig", alg = the alg
   the case loads it with (RS256 unless listed in PUB_KEY_ALGS; the signing key uses signing_alg), and
   kid = lowercase HEX (not base64url) of the RFC 7638 SHA-256 JWK thumbprint. Tokens are compact JWS made by
   go-jose with protected header {"alg": signing_alg, "kid": <kid of the signing key>} (no "typ"); the payload is
   the claims text after placeholder substitution.

2. Static key set. Unless the case is in FETCH_KEYS_FROM_REMOTE, Go injects Options.KeySet = a static set of
   pub_keys that picks the key whose kid equals the token's kid and otherwise fails with "no keys matches jwk keyid".
   So "invalid-signature" expects "oidc: verify token: failed to verify signature: no keys matches jwk keyid" - the
   tail is a harness artefact; go-oidc's real remote key set would say "failed to verify id token signature".
   Static key sets never touch the network, so e.g. "accounts.google.com issuer" works offline.

3. Remote keys. FETCH_KEYS_FROM_REMOTE cases use an httptest TLS server (its CA handed to the authenticator):
   /.testing/keys serves the JWKS of pub_keys; /.well-known/openid-configuration and
   /c/d/bar/.well-known/openid-configuration serve OPENID_CONFIGS[name]. In the discoveryURL cases issuer.url is
   https://auth.example.com[/a/b/foo[/]] and is never contacted: discovery goes to issuer.discoveryURL and the
   document's "issuer" must equal issuer.url exactly (trailing slash included). Go waits for HealthCheck() == nil
   before authenticating. Applicable remote cases: the five discoveryURL success cases.

4. Placeholders. {{.URL}} = the test server base URL (https://127.0.0.1:<port>) and is substituted in claims,
   issuer.url, issuer.discoveryURL, OPENID_CONFIGS, DISTRIBUTED_CLAIM_RESPONSES, want_err and want_init_err (not in
   want_health_err_prefix). {{.Expired}} = EXPIRED_TEXT_UTC (Go Time.String() of the expired exp, local zone).

5. Time. now = NOW_UNIX for every case that validates a token. go-oidc v2.5.0 rejects when exp < now (strict) with
   "oidc: token is expired (Token Expiry: <Time.String()>)", applies nbf with a 1-minute leeway, and never checks
   iat (the service-account payload has iat=1700077413, years after now, and is accepted; its nbf equals now).

6. Verification order (decides which error wins): untrusted "iss" routing first - an issuer mismatch returns
   (nil, false, nil), i.e. want_skip, and "accounts.google.com" is coalesced to "https://accounts.google.com";
   then go-oidc Verify: issuer, audience, exp/nbf, alg allowlist (supported_signing_algs), signature; then the
   username, groups, uid and extra mappings (credential-id "JTI=<jti>" is added to extra when jti is a string),
   then claim/requiredValue rules, then claimValidationRules CEL, then userValidationRules CEL. All authn errors
   are prefixed "oidc: "; go-oidc errors are wrapped as "oidc: verify token: <go-oidc error>".

7. Audiences. With exactly one configured audience go-oidc's client-id check produces
   'oidc: expected audience "my-client" got ["not-my-client"]'; with several (MatchAny) Go checks itself and lists the
   configured audiences sorted: 'oidc: expected audience in ["my-client" "random-client"] got ["not-my-client"]'.
   "azp" is never checked.

8. Init errors. New() first validates the single JWTAuthenticator with an empty field-path root (so messages read
   'issuer.url: Invalid value: ...', with no 'jwt[0].' prefix; one error is printed bare), then checks
   supported_signing_algs against the allowlist RS256/384/512, ES256/384/512, PS256/384/512
   ('oidc: unsupported signing alg: "HS256"'), then Go-only Options exclusivity.

9. want_user is the authenticator's own user.DefaultInfo: it EXCLUDES system:authenticated (added later by
   kube-apiserver's group adder) and compares Name/UID/Groups/Extra only. Go's Extra is nil when empty.

10. Not reproduced here: the latency-histogram metric assertions Go makes after each case, and the distributed-claim
    server's check of "Authorization: Bearer <claim>_token".
"""
