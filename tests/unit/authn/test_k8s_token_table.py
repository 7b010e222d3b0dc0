"""kube-apiserver's own JWT authenticator acceptance table (oidc_test.go TestToken), run through our code path.

Each applicable case of ``k8s_token_cases.CASES`` goes the way a token goes in the proxy: the case's
``JWTAuthenticator`` becomes an AuthenticationConfiguration document that ``parse_authentication_config`` parses;
the keys are served to a ``KeySource`` by a fake fetcher (discovery document + JWKS, as Go's test server does);
the claims are signed exactly as Go signs them (protected header ``{"alg", "kid"}``, the payload bytes verbatim) and
``TokenAuthenticator.authenticate`` decides, at the case's clock (``NOW_UNIX``).

- Success: ``Authenticated`` with exactly Go's ``want`` user (``system:authenticated`` is added later, in both).
- Go error: ``Rejected`` whose reason contains the text ``GO_ERRORS`` maps Go's error to (our reasons are ours;
  the map proves the same failure for the same reason). Go skip: ``NotMine``.
- Go init error: ``AuthConfigError`` with exactly Go's field error, rooted at ``jwt[0].`` (``INIT_ERRORS``).

Go's harness has no AuthenticationConfiguration signing-alg field: it sets ``Options.SupportedSigningAlgs`` (default
RS256). Every case runs twice: with the parsed spec as the file gives it (all nine RS/ES/PS algorithms, as
kube-apiserver does with ``--authentication-config``) and with ``signing_algs`` restricted to the case's
``supported_signing_algs`` (Go's harness); both must give Go's outcome, except where ``DEVIATIONS`` says otherwise.

System identities: Go has no equivalent of our ``allow_system_identities=False`` default, so the table runs with
``allow_system_identities=True``, except the cases about ``system:`` names (``SYSTEM_IDENTITY_CASES``), which run
with our default. What our default does to the one case Go accepts with ``system:`` names is a deviation.

Cases with ``applies=False`` are not parametrized at all; ``test_the_cases_not_run_are_exactly_these`` lists them.
The ``DEVIATIONS`` cases are run by their own tests, which assert our behaviour. Two small additions go beyond the
table where it leans on something it does not check: the discovery document must name the issuer exactly, and
kube-apiserver's escaped names (``claims.foo__dot__bar``) select keys without adding any to the maps CEL sees.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.cache import TokenCache
from kube_oidc_proxy.authn.cel import Compiler
from kube_oidc_proxy.authn.fielderror import AuthConfigError
from kube_oidc_proxy.authn.jwks import KeySource, discovery_url_for
from kube_oidc_proxy.authn.model import (
    SUPPORTED_SIGNING_ALGS,
    Authenticated,
    AuthResult,
    JWTAuthenticatorSpec,
    NotMine,
    Rejected,
    UserInfo,
)
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.config import OIDCConfig
from kube_oidc_proxy.httpclient import FetchResponse
from tests.unit.authn.k8s_token_cases import (
    CASES,
    EXPIRED_TEXT_UTC,
    FETCH_KEYS_FROM_REMOTE,
    NOW_UNIX,
    OPENID_CONFIGS,
    PUB_KEY_ALGS,
    TokenCase,
)

# Go's {{.URL}}: the base URL of its httptest TLS server (discovery documents and the JWKS). A host distinct from
# the issuers' (https://auth.example.com...), so a discoveryURL case can only pass by fetching discoveryURL.
SERVER_URL: Final = "https://127.0.0.1:8443"
JWKS_URL: Final = SERVER_URL + "/.testing/keys"
# The paths Go's test server serves OPENID_CONFIGS[name] at.
SERVER_DISCOVERY_PATHS: Final = ("/.well-known/openid-configuration", "/c/d/bar/.well-known/openid-configuration")

GO_DEFAULT_SIGNING_ALGS: Final = ("RS256",)

# Go's AuthenticateToken error (placeholders substituted) -> what our Rejected.reason must contain: the same
# failure, with the values Go names (the claim, the token's value, the expected one).
GO_ERRORS: Final[dict[str, str]] = {
    'oidc: parse username claims "username": claim not present': (
        'username claim "username" is missing, empty or not a string: the token has no such claim '
        '(its claims: ["iss" "aud" "exp"])'
    ),
    "oidc: email not verified": (
        "email_verified is not true for the email username claim: the token's email_verified is false"
    ),
    # Go: email_verified is not a JSON boolean; ours: it is not `true` (a string "false" is not true either)
    "oidc: parse 'email_verified' claim: json: cannot unmarshal string into Go value of type bool": (
        'email_verified is not true for the email username claim: the token\'s email_verified is "false"'
    ),
    'oidc: parse groups claim "groups": json: cannot unmarshal number into Go value of type string': (
        'groups claim "groups" is not a string or a list of strings: the token\'s value is 42'
    ),
    "oidc: required claim hd not present in ID token": (
        'required claim "hd" is missing or does not match: the token has no such claim'
    ),
    "oidc: required claim hd value does not match. Got = example.org, want = example.com": (
        'required claim "hd" is missing or does not match: the token\'s value is "example.org", expected "example.com"'
    ),
    # Go's tail is an artefact of its static key set (see VALIDATION_NOTE 2): no key has the token's kid. The kids
    # are made per run (test_oidc.py asserts the whole reason, with the kids loaded)
    "oidc: verify token: failed to verify signature: no keys matches jwk keyid": 'no signing key matches kid "',
    f"oidc: verify token: oidc: token is expired (Token Expiry: {EXPIRED_TEXT_UTC})": (
        "token has expired: exp 2009-11-10T22:00:00Z is 1h0m0s before the proxy's clock (2009-11-10T23:00:00Z); "
        "no clock skew is allowed for exp"
    ),
    'oidc: verify token: oidc: expected audience "my-client" got ["not-my-client"]': (
        'token audience does not include the client id: the token\'s aud is "not-my-client", expected "my-client"'
    ),
    'oidc: verify token: oidc: expected audience "my-client" got ["my-wrong-client"]': (
        'token audience does not include the client id: the token\'s aud is "my-wrong-client", expected "my-client"'
    ),
    'oidc: verify token: oidc: expected audience in ["my-client" "random-client"] got ["not-my-client"]': (
        'token audience does not include the client id: the token\'s aud is ["not-my-client"], '
        'expected one of ["random-client" "my-client"]'
    ),
    (
        "oidc: error evaluating claim validation expression: validation expression "
        '\'sets.equivalent(claims.aud, ["bar", "foo", "baz"])\' failed: audience must exactly contain [bar, foo, baz]'
    ): (
        "error evaluating claim validation expression: validation expression "
        '\'sets.equivalent(claims.aud, ["bar", "foo", "baz"])\' failed: audience must exactly contain [bar, foo, baz]'
    ),
    'oidc: verify token: oidc: id token signed with unsupported algorithm, expected ["RS256"] got "PS256"': (
        'signing algorithm "PS256" is not allowed: expected ["RS256"]'
    ),
    (
        "oidc: error evaluating user info validation rule: validation expression "
        "'!user.username.startsWith('system:')' failed: username cannot used reserved system: prefix"
    ): (
        "error evaluating user info validation rule: validation expression "
        "'!user.username.startsWith('system:')' failed: username cannot used reserved system: prefix"
    ),
    (
        "oidc: error evaluating user info validation rule: validation expression 'user.groups.all(group, "
        "!group.startsWith('system:'))' failed: groups cannot used reserved system: prefix"
    ): (
        "error evaluating user info validation rule: validation expression 'user.groups.all(group, "
        "!group.startsWith('system:'))' failed: groups cannot used reserved system: prefix"
    ),
    # cel-go's "no such key: hd"; cel-cpp's evaluation error is worded by cel-cpp, so Go's text up to it is
    # asserted, together with the missing key's name
    (
        "oidc: error evaluating claim validation expression: expression 'claims.hd == \"example.com\"' "
        "resulted in error: no such key: hd"
    ): "error evaluating claim validation expression: expression 'claims.hd == \"example.com\"' resulted in error: ",
    (
        "oidc: error evaluating group claim expression: expression 'claims.turtle.foo.bar.baz.a.b.c.d' "
        "resulted in error: no such key: a"
    ): "error evaluating group claim expression: expression 'claims.turtle.foo.bar.baz.a.b.c.d' resulted in error: ",
    (
        "oidc: error evaluating user info validation rule: validation expression "
        "'!(user.extra[?'authentication.kubernetes.io/credential-id'][0].orValue('') in "
        '["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"])\' failed: credential is revoked'
    ): (
        "error evaluating user info validation rule: validation expression "
        "'!(user.extra[?'authentication.kubernetes.io/credential-id'][0].orValue('') in "
        '["JTI=ea28ed49-2e11-4280-9ec5-bc3d1d84661a"])\' failed: credential is revoked'
    ),
}

# Go's CEL evaluation errors name the missing key ("no such key: hd"); ours must name it too.
GO_MISSING_KEY: Final[dict[str, str]] = {
    "claim validation rule with expression fails": "hd",
    "claim mappings with expressions and deeply nested claim - failure without optional": "a",
}

# Go's New() error for one JWTAuthenticator (empty field-path root) -> our AuthConfigError.errors, exactly.
INIT_ERRORS: Final[dict[str, list[str]]] = {
    'issuer.url: Invalid value: "http://auth.example.com": URL scheme must be https': [
        'jwt[0].issuer.url: Invalid value: "http://auth.example.com": URL scheme must be https'
    ],
    "claimMappings.username: Required value: claim or expression is required": [
        "jwt[0].claimMappings.username: Required value: claim or expression is required"
    ],
    'claimMappings.extra[2].key: Duplicate value: "example.org/foo"': [
        'jwt[0].claimMappings.extra[2].key: Duplicate value: "example.org/foo"'
    ],
}

# The cases whose point is refusing system: names: they run with our default, allow_system_identities=False.
SYSTEM_IDENTITY_CASES: Final = frozenset(
    {"user validation rule fails for user.username", "user validation rule fails for user.groups"}
)


class Deviation(NamedTuple):
    go: str
    ours: str
    why: str


DEVIATIONS: Final[dict[str, Deviation]] = {
    "empty username is allowed via claim": Deviation(
        go='accepts the token with username "" (the username claim is present and is a string)',
        ours='Rejected: username claim "username" is missing, empty or not a string: the token\'s value is ""',
        why="the proxy impersonates: an empty Impersonate-User would mean no impersonation at all",
    ),
    "test user validation rule doesn't fail when user info is empty except username": Deviation(
        go='accepts the token with username " " (a single space)',
        ours='Rejected: mapped username " " has leading or trailing whitespace',
        why=(
            "the proxy forwards the username as an Impersonate-User header value, which kube-apiserver's Go HTTP "
            'server trims: it would read "" (or, for " system:masters", system:masters), not what was checked'
        ),
    ),
    "claim mappings with expressions and deeply nested claim - success - service account payload": Deviation(
        go="accepts system:serviceaccount:kube-system:coredns in groups system:serviceaccounts[:kube-system]",
        ours=(
            "by default (allow_system_identities=False) Rejected: username ... is in the reserved system: "
            "namespace; with allow_system_identities=True exactly Go's user"
        ),
        why=(
            "an OIDC token must not become a service account, node or system: group through the proxy unless the "
            "operator opts in (--oidc-allow-system-identities)"
        ),
    ),
    "invalid-signing-alg": Deviation(
        go='rejects the PS256 token: Options.SupportedSigningAlgs is ["RS256"] (the legacy --oidc-signing-algs)',
        ours=(
            "with an AuthenticationConfiguration all nine RS/ES/PS algorithms pass the allow-list, as in "
            "kube-apiserver with --authentication-config: the PS256 token is accepted when its key is published "
            "without a JWK alg or with alg PS256; the case publishes rsa_1 with alg RS256, which joserfc will not "
            "use for PS256 (go-jose ignores a JWK's alg), so with the case's own JWKS it is Rejected: token "
            "signature is invalid: .... Restricted to the case's algorithms (the legacy flag): Rejected: signing "
            'algorithm "PS256" is not allowed: expected ["RS256"], Go\'s failure'
        ),
        why=(
            "the AuthenticationConfiguration has no signing-algorithm field; kube-apiserver passes "
            "oidc.AllValidSigningAlgorithms() for the file"
        ),
    ),
    "invalid-sig-alg": Deviation(
        go='New() fails: oidc: unsupported signing alg: "HS256" (in Options.SupportedSigningAlgs)',
        ours=(
            "the file cannot name an algorithm, so it parses; the legacy --oidc-signing-algs=HS256 is refused by "
            "OIDCConfig.validate; a spec forced to HS256 still refuses every HS256 token (no symmetric keys exist)"
        ),
        why="HS256 would let anyone holding the issuer's published key material forge tokens",
    ),
}

NOT_APPLICABLE: Final = [case for case in CASES if not case.applies]
APPLICABLE: Final = [case for case in CASES if case.applies]
TABLE: Final = [case for case in APPLICABLE if case.name not in DEVIATIONS]
BY_NAME: Final = {case.name: case for case in CASES}

# --- keys: Go's testdata keys, generated here -------------------------------------------------------------------


@dataclass(frozen=True)
class TestKey:
    __test__ = False  # not a pytest class

    key: RSAKey | ECKey
    kid: str  # lowercase hex of the RFC 7638 SHA-256 thumbprint, as Go's test computes it

    def jwk(self, alg: str) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "use": "sig", "alg": alg, "kid": self.kid}


def _test_key(key: RSAKey | ECKey) -> TestKey:
    thumbprint = key.thumbprint()
    return TestKey(key, base64.urlsafe_b64decode(thumbprint + "=" * (-len(thumbprint) % 4)).hex())


@pytest.fixture(scope="module")
def keys() -> dict[str, TestKey]:
    """rsa_1, rsa_2 (RSA 2048) and ecdsa_1, ecdsa_2 (P-521: the es512 case loads both as ES512)."""
    return {
        "rsa_1": _test_key(RSAKey.generate_key(2048)),
        "rsa_2": _test_key(RSAKey.generate_key(2048)),
        "ecdsa_1": _test_key(ECKey.generate_key("P-521")),
        "ecdsa_2": _test_key(ECKey.generate_key("P-521")),
    }


@pytest.fixture(scope="module")
def compiler() -> Compiler:
    return Compiler()


# --- the harness ------------------------------------------------------------------------------------------------


def substitute(text: str) -> str:
    return text.replace("{{.URL}}", SERVER_URL).replace("{{.Expired}}", EXPIRED_TEXT_UTC)


def config_document(case: TokenCase) -> str:
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [case.authenticator],
    }
    return substitute(json.dumps(document, indent=2))


def parse_case(case: TokenCase, compiler: Compiler) -> JWTAuthenticatorSpec:
    config = parse_authentication_config(config_document(case), compiler)
    assert len(config.authenticators) == 1
    spec = config.authenticators[0]
    assert spec.signing_algs == SUPPORTED_SIGNING_ALGS  # the file: all nine
    return spec


def sign_case(case: TokenCase, keys: dict[str, TestKey]) -> bytes:
    """The case's claims text, verbatim after substitution, signed as go-jose signs it in Go's test."""
    assert case.claims is not None
    signer = keys[case.signing_key]
    protected = {"alg": case.signing_alg, "kid": signer.kid}
    return jws.serialize_compact(
        protected, substitute(case.claims).encode(), signer.key, algorithms=[case.signing_alg]
    ).encode()


def published_jwks(case: TokenCase, keys: dict[str, TestKey]) -> dict[str, Any]:
    algs = PUB_KEY_ALGS.get(case.name, ("RS256",) * len(case.pub_keys))
    return {"keys": [keys[name].jwk(alg) for name, alg in zip(case.pub_keys, algs, strict=True)]}


class CaseServer:
    """Go's test server as a KeySource fetcher: only the URLs it serves answer; every request is recorded."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.calls: list[str] = []

    async def __call__(self, url: str) -> FetchResponse:
        self.calls.append(url)
        if url not in self.documents:
            return FetchResponse(404, [], b"{}")
        return FetchResponse(200, [(b"content-type", b"application/json")], json.dumps(self.documents[url]).encode())


def case_server(case: TokenCase, spec: JWTAuthenticatorSpec, jwks_document: dict[str, Any]) -> CaseServer:
    if case.name in FETCH_KEYS_FROM_REMOTE:
        # discovery goes to issuer.discoveryURL on the test server; the issuer's own URL is never contacted
        discovery = json.loads(substitute(OPENID_CONFIGS[case.name]))
        documents = {SERVER_URL + path: discovery for path in SERVER_DISCOVERY_PATHS}
    else:
        # Go injects a static key set; the closest we have is the issuer's own discovery document
        documents = {discovery_url_for(spec.issuer_url): {"issuer": spec.issuer_url, "jwks_uri": JWKS_URL}}
    return CaseServer({**documents, JWKS_URL: jwks_document})


def key_source(spec: JWTAuthenticatorSpec, server: CaseServer) -> KeySource:
    return KeySource(
        spec.issuer_url,
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        discovery_url=spec.discovery_url,
        fetcher=server,
        clock=lambda: float(NOW_UNIX),
    )


async def authenticate(
    case: TokenCase,
    spec: JWTAuthenticatorSpec,
    token: bytes,
    jwks_document: dict[str, Any],
    *,
    allow_system_identities: bool,
) -> AuthResult:
    server = case_server(case, spec, jwks_document)
    source = key_source(spec, server)
    assert await source.refresh(), source.last_error  # Go waits for HealthCheck() == nil
    if spec.discovery_url is not None:
        assert server.calls == [spec.discovery_url, JWKS_URL]  # never the issuer's own URL
    clock = lambda: float(NOW_UNIX)  # noqa: E731
    authenticator = JWTAuthenticator(spec, source, allow_system_identities=allow_system_identities, clock=clock)
    return await TokenAuthenticator([authenticator], TokenCache(), clock=clock).authenticate(token)


def expected_user(case: TokenCase) -> UserInfo:
    assert case.want_user is not None
    want = case.want_user
    return UserInfo(
        username=want["username"],
        uid=want["uid"],
        groups=tuple(want["groups"]),
        extra={key: tuple(values) for key, values in want["extra"].items()},
    )


def assert_go_outcome(case: TokenCase, result: AuthResult, spec: JWTAuthenticatorSpec) -> None:
    if case.want_skip:
        assert isinstance(result, NotMine), result
    elif case.want_err is not None:
        assert isinstance(result, Rejected), result
        ours = GO_ERRORS[substitute(case.want_err)]
        assert ours in result.reason
        if case.name in GO_MISSING_KEY:
            assert f'"{GO_MISSING_KEY[case.name]}"' in result.reason.removeprefix(ours)
    else:
        assert isinstance(result, Authenticated), result
        assert result.user == expected_user(case)
        assert result.issuer == spec.issuer_url
        assert result.expires_at == json.loads(substitute(case.claims or "{}"))["exp"]


# --- the table --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TABLE, ids=[case.name for case in TABLE])
async def test_kube_apiserver_token_case(case: TokenCase, keys: dict[str, TestKey], compiler: Compiler) -> None:
    if case.want_init_err is not None:
        with pytest.raises(AuthConfigError) as failure:
            parse_authentication_config(config_document(case), compiler)
        assert failure.value.errors == INIT_ERRORS[substitute(case.want_init_err)]
        return
    assert case.want_health_err_prefix is None  # no applicable case checks Go's HealthCheck
    file_spec = parse_case(case, compiler)
    go_options_spec = dataclasses.replace(file_spec, signing_algs=frozenset(case.supported_signing_algs))
    token = sign_case(case, keys)
    for spec in (file_spec, go_options_spec):
        result = await authenticate(
            case,
            spec,
            token,
            published_jwks(case, keys),
            allow_system_identities=case.name not in SYSTEM_IDENTITY_CASES,
        )
        assert_go_outcome(case, result, spec)


def test_the_cases_not_run_are_exactly_these() -> None:
    assert {case.name: case.not_applicable for case in NOT_APPLICABLE} == {
        "groups-distributed": "distributed/aggregated claims (_claim_names/_claim_sources) are not implemented by "
        "this proxy",
        "groups-distributed invalid client": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy; also injects a Go-only Options.Client transport",
        "groups-distributed-malformed-claim-names": "distributed/aggregated claims (_claim_names/_claim_sources) are "
        "not implemented by this proxy",
        "groups-distributed-malformed-names-and-sources": "distributed/aggregated claims "
        "(_claim_names/_claim_sources) are not implemented by this proxy",
        "groups-distributed-malformed-distributed-claim": "distributed/aggregated claims "
        "(_claim_names/_claim_sources) are not implemented by this proxy",
        "groups-distributed-unusual-name": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy",
        "groups-distributed-wrong-audience": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy",
        "groups-distributed-expired-token": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy",
        "groups-distributed-normal-claim-wins": "distributed/aggregated claims (_claim_names/_claim_sources) are "
        "not implemented by this proxy (the expected user equals simply ignoring _claim_names/_claim_sources; "
        "runner may opt in)",
        "group-string-claim-distributed": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy",
        "group-string-claim-aggregated-not-supported": "distributed/aggregated claims "
        "(_claim_names/_claim_sources) are not implemented by this proxy (the expected user equals simply "
        "ignoring _claim_names/_claim_sources; runner may opt in)",
        "groups-prefix-distributed": "distributed/aggregated claims (_claim_names/_claim_sources) are not "
        "implemented by this proxy",
        "client and ca mutually exclusive": "Go-only Options fields: Client and CAContentProvider mutual exclusion",
        "keyset and discovery URL mutually exclusive": "Go-only Options.KeySet (a static-keyset test hook) vs "
        "issuer.discoveryURL exclusivity",
        "health check failure": "tests Go's asynchronous provider init / HealthCheck() polling (and relies on DNS "
        "failure for .notatld)",
        "disallowed issuer via configured value": "Go-only Options.DisallowedIssuers (kube-apiserver's "
        "service-account issuer list); a proxy has none",
        "invalid egress type": "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does not "
        "exist in a proxy",
        "valid egress type with error": "egress selector (issuer.egressSelectorType + Go Options.EgressLookup) does "
        "not exist in a proxy",
        "valid egress type with error - again": "egress selector (issuer.egressSelectorType + Go "
        "Options.EgressLookup) does not exist in a proxy",
        "valid egress type with no egress config": "egress selector (issuer.egressSelectorType + Go "
        "Options.EgressLookup) does not exist in a proxy",
        "valid egress type with no egress config for the given type": "egress selector "
        "(issuer.egressSelectorType + Go Options.EgressLookup) does not exist in a proxy",
        "valid egress type with broken dialer": "egress selector (issuer.egressSelectorType + Go "
        "Options.EgressLookup) does not exist in a proxy",
        "valid egress type with working dialer": "egress selector (issuer.egressSelectorType + Go "
        "Options.EgressLookup) does not exist in a proxy",
    }


def test_the_table_is_whole() -> None:
    """Every applicable case is run, by the table or by its deviation test; every mapping entry is used."""
    assert len(CASES) == 93
    assert len(APPLICABLE) == 70
    assert len(TABLE) + len(DEVIATIONS) == len(APPLICABLE)
    assert set(DEVIATIONS) <= {case.name for case in APPLICABLE}
    assert set(DEVIATION_TESTS) == set(DEVIATIONS)
    assert SYSTEM_IDENTITY_CASES.issubset(case.name for case in TABLE)
    used_errors = {substitute(case.want_err) for case in APPLICABLE if case.want_err is not None}
    assert set(GO_ERRORS) == used_errors
    used_init = {substitute(case.want_init_err) for case in TABLE if case.want_init_err is not None}
    assert set(INIT_ERRORS) == used_init
    assert set(GO_MISSING_KEY) <= {case.name for case in TABLE if case.want_err is not None}


DISCOVERY_CASES: Final = [case for case in TABLE if case.name in FETCH_KEYS_FROM_REMOTE]


@pytest.mark.parametrize("case", DISCOVERY_CASES, ids=[case.name for case in DISCOVERY_CASES])
async def test_the_discovery_document_must_name_the_issuer_exactly(
    case: TokenCase, keys: dict[str, TestKey], compiler: Compiler
) -> None:
    """The discoveryURL cases pass above because OPENID_CONFIGS names issuer.url exactly; off by a slash, no keys."""
    spec = parse_case(case, compiler)
    assert spec.discovery_url is not None
    served = json.loads(substitute(OPENID_CONFIGS[case.name]))
    assert served["issuer"] == spec.issuer_url
    for wrong in (spec.issuer_url.rstrip("/"), spec.issuer_url + "/"):
        if wrong == spec.issuer_url:
            continue
        server = case_server(case, spec, published_jwks(case, keys))
        server.documents = {
            url: {**doc, "issuer": wrong} if url != JWKS_URL else doc for url, doc in server.documents.items()
        }
        source = key_source(spec, server)
        assert not await source.refresh()
        assert "does not match" in source.last_error
        assert source.keys is None


# --- beyond the table: an escaped name selects a key, it adds none -----------------------------------------------

# Table cases with rules added that hold in kube-apiserver, whose maps unescape a key when it is looked up
# (unescapeMapper.Find) but keep only their real keys for size(), in, all/exists and map.
ESCAPING_RULES: Final[dict[str, dict[str, list[dict[str, str]]]]] = {
    "extra claim mapping with user validation rule succeeds": {
        "userValidationRules": [
            {"expression": "user.extra.size() == 2"},
            {"expression": "user.extra.all(k, k.startsWith('example.org/'))"},
            {"expression": "!('example__dot__org__slash__foo' in user.extra)"},
            {"expression": "has(user.extra.example__dot__org__slash__foo) && !has(user.extra.example__dot__org)"},
            {"expression": "user.extra.?example__dot__org__slash__nope.orValue(['none']) == ['none']"},
        ]
    },
    "claim mappings with expressions and deeply nested claim - success - claims payload with deep use of __dot__": {
        "claimValidationRules": [
            {"expression": "claims.turtle.foo.bar.baz.size() == 6"},
            {"expression": "claims.turtle.foo.bar.baz.all(k, !k.contains('__'))"},
            {"expression": "claims.data.all(d, d.size() == 1 && has(d.groups__dot__io))"},
            {"expression": "claims.turtle.foo.bar.bee.?username__dot__io.company__dot__io.orValue('') == 'fun-corp'"},
        ]
    },
}


@pytest.mark.parametrize("name", sorted(ESCAPING_RULES), ids=sorted(ESCAPING_RULES))
async def test_escaped_names_leave_the_maps_as_they_are(
    name: str, keys: dict[str, TestKey], compiler: Compiler
) -> None:
    case = BY_NAME[name]
    authenticator = json.loads(json.dumps(case.authenticator))
    for field, rules in ESCAPING_RULES[name].items():
        authenticator[field] = [*authenticator.get(field, []), *rules]
    derived = dataclasses.replace(case, authenticator=authenticator)
    spec = parse_case(derived, compiler)
    result = await authenticate(
        derived, spec, sign_case(derived, keys), published_jwks(derived, keys), allow_system_identities=True
    )
    assert_go_outcome(derived, result, spec)


# --- deviations: our behaviour, asserted ------------------------------------------------------------------------

DeviationTest = Callable[[dict[str, TestKey], Compiler], Awaitable[None]]
DEVIATION_TESTS: dict[str, DeviationTest] = {}


def deviation(name: str) -> Callable[[DeviationTest], DeviationTest]:
    def register(test: DeviationTest) -> DeviationTest:
        assert name in DEVIATIONS
        DEVIATION_TESTS[name] = test
        return test

    return register


@deviation("empty username is allowed via claim")
async def test_an_empty_username_from_a_claim_is_rejected(keys: dict[str, TestKey], compiler: Compiler) -> None:
    case = BY_NAME["empty username is allowed via claim"]
    assert case.want_user is not None
    assert case.want_user["username"] == ""  # what Go accepts
    spec = parse_case(case, compiler)
    result = await authenticate(
        case, spec, sign_case(case, keys), published_jwks(case, keys), allow_system_identities=True
    )
    assert isinstance(result, Rejected), result
    assert result.reason == 'username claim "username" is missing, empty or not a string: the token\'s value is ""'


@deviation("test user validation rule doesn't fail when user info is empty except username")
async def test_a_username_kube_apiserver_would_trim_is_rejected(keys: dict[str, TestKey], compiler: Compiler) -> None:
    case = BY_NAME["test user validation rule doesn't fail when user info is empty except username"]
    assert case.want_user is not None
    assert case.want_user["username"] == " "  # what Go accepts
    spec = parse_case(case, compiler)
    result = await authenticate(
        case, spec, sign_case(case, keys), published_jwks(case, keys), allow_system_identities=True
    )
    assert isinstance(result, Rejected), result
    assert result.reason == 'mapped username " " has leading or trailing whitespace'


@deviation("claim mappings with expressions and deeply nested claim - success - service account payload")
async def test_system_identities_are_rejected_by_default(keys: dict[str, TestKey], compiler: Compiler) -> None:
    case = BY_NAME["claim mappings with expressions and deeply nested claim - success - service account payload"]
    spec = parse_case(case, compiler)
    token = sign_case(case, keys)
    jwks_document = published_jwks(case, keys)
    for algs in (spec.signing_algs, frozenset(case.supported_signing_algs)):
        restricted = dataclasses.replace(spec, signing_algs=algs)
        # opted in: exactly Go's user
        allowed = await authenticate(case, restricted, token, jwks_document, allow_system_identities=True)
        assert_go_outcome(case, allowed, restricted)
        # our default
        refused = await authenticate(case, restricted, token, jwks_document, allow_system_identities=False)
        assert isinstance(refused, Rejected), refused
        assert refused.reason == (
            'username "system:serviceaccount:kube-system:coredns" is in the reserved system: namespace'
        )


@deviation("invalid-signing-alg")
async def test_the_file_accepts_all_nine_algorithms(keys: dict[str, TestKey], compiler: Compiler) -> None:
    case = BY_NAME["invalid-signing-alg"]
    assert case.signing_alg == "PS256"
    assert case.supported_signing_algs == GO_DEFAULT_SIGNING_ALGS
    spec = parse_case(case, compiler)
    token = sign_case(case, keys)
    jwks_document = published_jwks(case, keys)
    # Go's harness (Options.SupportedSigningAlgs = RS256, the legacy flag's default): refused at the allow-list
    legacy = dataclasses.replace(spec, signing_algs=frozenset(case.supported_signing_algs))
    result = await authenticate(case, legacy, token, jwks_document, allow_system_identities=True)
    assert_go_outcome(case, result, legacy)
    # the file: PS256 passes the allow-list. The case publishes rsa_1 with JWK alg RS256, which joserfc will not use
    # for PS256 (go-jose ignores a JWK's alg), so the same token is refused by the signature check instead ...
    result = await authenticate(case, spec, token, jwks_document, allow_system_identities=True)
    assert isinstance(result, Rejected), result
    assert "is not allowed" not in result.reason
    assert result.reason == (
        f'token signature is invalid: kid "{keys[case.signing_key].kid}", alg "PS256", 1 key of {spec.issuer_url} tried'
    )
    # ... and accepted when the published key does not contradict the token's alg
    for alg in ("PS256", None):
        jwk = keys[case.signing_key].jwk("PS256")
        if alg is None:
            del jwk["alg"]
        else:
            jwk["alg"] = alg
        result = await authenticate(case, spec, token, {"keys": [jwk]}, allow_system_identities=True)
        assert isinstance(result, Authenticated), (alg, result)
        assert result.user == UserInfo(username="prefix:jane")


@deviation("invalid-sig-alg")
async def test_hs256_can_neither_be_configured_nor_used(keys: dict[str, TestKey], compiler: Compiler) -> None:
    case = BY_NAME["invalid-sig-alg"]
    assert case.supported_signing_algs == ("HS256",)
    assert case.want_init_err == 'oidc: unsupported signing alg: "HS256"'
    # the file has no algorithm field: it parses, with the nine asymmetric algorithms only
    spec = parse_case(case, compiler)
    assert "HS256" not in spec.signing_algs
    # the legacy flag naming HS256 is refused at start, as Go's New() refuses it
    errors = OIDCConfig(
        issuer_url=spec.issuer_url, client_id=spec.audiences[0], signing_algs=case.supported_signing_algs
    ).validate()
    assert errors == [
        f"--oidc-signing-algs: 'HS256' is not supported (supported: {', '.join(sorted(SUPPORTED_SIGNING_ALGS))})"
    ]
    # and even a spec forced to HS256 refuses an HS256 token keyed with the published key material
    forced = dataclasses.replace(spec, signing_algs=frozenset(case.supported_signing_algs))
    rsa = keys["rsa_1"]
    claims = {"iss": spec.issuer_url, "aud": spec.audiences[0], "username": "jane", "exp": NOW_UNIX + 3600}
    jwks_document = {"keys": [rsa.jwk("RS256")]}
    for secret in (rsa.key.as_pem(private=False), json.dumps(rsa.jwk("RS256")).encode()):
        token = _hs256(claims, secret, rsa.kid)
        for target in (spec, forced):
            result = await authenticate(case, target, token, jwks_document, allow_system_identities=True)
            assert isinstance(result, Rejected), result


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> bytes:
    def segment(value: Any) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = segment({"alg": "HS256", "kid": kid}) + b"." + segment(claims)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return signing_input + b"." + signature
