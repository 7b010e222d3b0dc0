"""kube-apiserver's AuthenticationConfiguration validation table (k8s.io/apiserver
pkg/apis/apiserver/validation/validation_test.go at commit 24a394e), as data.

Source: kubernetes/apiserver@24a394e516bfda066d7e2221d7d92c052de27c54, tests
TestValidateAuthenticationConfiguration (27), TestValidateIssuerURL (8), TestValidateIssuerDiscoveryURL (12),
TestValidateAudiences (8), TestValidateCertificateAuthority (3), TestValidateClaimValidationRules (12),
TestValidateClaimMappings (32) and TestValidateUserValidationRules (5): 107 cases, in file order. Code under test:
validation.go in the same directory, k8s.io/apimachinery@eed236ceee2c (field errors, IsDomainPrefixedPath) and
k8s.io/client-go util/cert (CA parsing).
The authorization-configuration tests in the same file are not JWT-related and are not included.

How to read a case
------------------
* ``config`` is a whole AuthenticationConfiguration document (JSON/YAML shape, apiVersion
  ``apiserver.config.k8s.io/v1``). Fields the Go case leaves at their zero value are omitted, except where the case is
  about that field (e.g. ``"url": ""``). ``"prefix"`` is present only where Go sets ``Prefix`` (a ``*string``): a
  missing key is Go's nil. "jwt authenticator is empty" uses ``"jwt": []`` (Go: nil slice; same result).
* Sub-object tests call a Go helper on a fragment. Here the fragment sits in a minimal valid JWTAuthenticator at
  ``jwt[0]``: issuer url ``https://issuer-url``, audiences ``["audience"]``, username claim ``sub`` with prefix ``""``,
  unless the case sets those fields. The only expected errors are the case's own. Field paths are rebased to the
  document. The Go helpers used roots such as ``issuer.url``, ``issuer.claimValidationRules`` and
  ``issuer.claimMappings``; here they are ``jwt[0].issuer.url``, ``jwt[0].claimValidationRules`` and
  ``jwt[0].claimMappings``.
* ``want_errors`` holds the expected errors, one ``field.Error.Error()`` string per item, in kube-apiserver's emission
  order: ``<path>: <Type>[: <value>][: <detail>]``. Go's aggregate wraps several errors as ``[e1, e2]``; here they are
  separate items. An empty tuple means the document is valid.
* Surprise: the "audiences is empty" detail repeats the field path. Go renders ``fmt.Sprintf("at least one %s is
  required", fldPath)``, so after rebasing the text is ``at least one jwt[0].issuer.audiences is required``.

CEL compiler messages
---------------------
kube-apiserver compiles CEL with cel-go. We use cel-expr-python (cel-cpp), whose parse and check messages differ. For
a CEL compilation error the want string is split with ``COMPILER_MARKER`` (``" || COMPILER: "``):

    head + " || COMPILER: " + tail    where  Go's string == head + " " + tail

``head`` is the kube-apiserver-authored part, e.g. ``jwt[0].claimMappings.username.expression: Invalid value:
"foo.bar": compilation failed:``. ``tail`` is cel-go's ``issues.String()``. A runner should check that our error has
the same field path, type ("Invalid value") and quoted value, and that it starts with ``head``. It should not compare
``tail``. ``must evaluate to bool`` is kube-authored and carries no marker: compare it exactly. The expressions in
these cases need more than core CEL: the strings extension (``join``, ``upperAscii``, ``trim``), optional syntax
(``claims.?x``, ``orValue``) and the ``map`` macro. The email/email_verified cases also need an AST walk of the
checked expression (see RULES_SUMMARY).

Go-specific text that is not CEL
--------------------------------
* The "url parse error" cases expect Go ``net/url`` text: ``parse "<url>": invalid port ":invalid-port" after host``.
  Our validator must reproduce it: urllib.parse.urlsplit accepts this URL, and only ``.port`` raises, with a
  different message.
* "invalid certificate authority" expects client-go's text ``data does not contain any valid RSA or ECDSA
  certificates`` and the literal value ``"<omitted>"``.

Options Go sets per test
------------------------
* Feature gates: the default at this commit, i.e. StructuredAuthenticationConfigurationEgressSelector on (beta,
  default true since 1.34). The cases that turn it off (``structuredAuthnEgressSelectorFeatureOverride=false``,
  ``gaOnly``) are not applicable. "claim and expression are empty, structured authn feature enabled" predates the
  removal of the StructuredAuthenticationConfiguration gate (now GA), so nothing is left to toggle.
* Compiler: ``authenticationcel.NewDefaultCompiler()``, i.e. the Kubernetes base CEL environment at the default
  compatibility version.
* ``disallowedIssuers`` (kube-apiserver passes its --service-account-issuer values): empty everywhere. The two cases
  that use it are not applicable.
* Some Go cases also assert internal state (``wantCELMapper``, ``wantUsesEmailVerifiedClaim``) or seed it
  (``usesEmailVerifiedClaim``). A document cannot express these. ``CASE_NOTES`` records them and says how the seeded
  case was made whole-document.

Verification: each case's ``config`` was decoded the way kube-apiserver's loader does it (install scheme, strict)
and run through ValidateAuthenticationConfiguration at this commit (Go). The output equals ``want_errors``, with the
compiler marker replaced by one space, for all cases except the two that need the egress feature gate off.

Not applicable (``applies=False``, reason in ``not_applicable``): the disallowed-issuer cases and the egress
feature-gate-off variants (the proxy accepts ``egressSelectorType: cluster``, refuses ``controlplane`` with its own
message, and any other value as kube-apiserver does). For these, ``want_errors`` still holds Go's result, for the
record. The test file has no anonymous-auth cases at this commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_VERSION",
    "CASES",
    "CASE_NOTES",
    "COMPILER_MARKER",
    "KIND",
    "RULES_SUMMARY",
    "ConfigCase",
]

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "AuthenticationConfiguration"
COMPILER_MARKER = " || COMPILER: "


@dataclass(frozen=True)
class ConfigCase:
    test: str  # Go test function, e.g. "TestValidateClaimMappings"
    name: str  # the Go case name, verbatim
    config: dict[str, Any]  # a whole AuthenticationConfiguration document
    want_errors: tuple[str, ...]  # field.Error strings, paths rebased to the document; () = valid
    applies: bool = True
    not_applicable: str = ""


# --------------------------------------------------------------------------------------------------------------------
# builders (each call returns fresh dicts, so cases never share mutable state)


def _doc(*authenticators: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "jwt": list(authenticators)}


def _issuer(**fields: Any) -> dict[str, Any]:
    """Issuer with url https://issuer-url and audiences [audience]; keyword arguments override or add fields."""
    issuer: dict[str, Any] = {"url": "https://issuer-url", "audiences": ["audience"]}
    issuer.update(fields)
    return issuer


def _jwt(
    *,
    issuer: dict[str, Any] | None = None,
    claim_validation_rules: list[dict[str, Any]] | None = None,
    claim_mappings: dict[str, Any] | None = None,
    user_validation_rules: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Minimal valid JWTAuthenticator; username claim "sub" with prefix "" unless claim_mappings is given."""
    authenticator: dict[str, Any] = {"issuer": issuer if issuer is not None else _issuer()}
    if claim_validation_rules is not None:
        authenticator["claimValidationRules"] = claim_validation_rules
    authenticator["claimMappings"] = (
        claim_mappings if claim_mappings is not None else {"username": {"claim": "sub", "prefix": ""}}
    )
    if user_validation_rules is not None:
        authenticator["userValidationRules"] = user_validation_rules
    return authenticator


def _ac_jwt(**issuer_fields: Any) -> dict[str, Any]:
    """The authenticator most TestValidateAuthenticationConfiguration cases repeat: claim rule foo=bar, username
    claim "sub" with prefix "prefix"."""
    return _jwt(
        issuer=_issuer(**issuer_fields),
        claim_validation_rules=[{"claim": "foo", "requiredValue": "bar"}],
        claim_mappings={"username": {"claim": "sub", "prefix": "prefix"}},
    )


def _ac_email(username_expression: str, **extra_mappings: Any) -> dict[str, Any]:
    """Document for the email/email_verified cases: claim rule foo=bar, username via expression."""
    mappings: dict[str, Any] = {"username": {"expression": username_expression}}
    mappings.update(extra_mappings)
    return _doc(
        _jwt(claim_validation_rules=[{"claim": "foo", "requiredValue": "bar"}], claim_mappings=mappings),
    )


EMAIL_DETAIL = (
    "claims.email_verified must be used in claimMappings.username.expression or "
    "claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in "
    "claimMappings.username.expression"
)
_EMAIL_PATH = "jwt[0].claimMappings.username.expression"

# cel-go's issues.String() for the expression "foo.bar" (identical for the claims and the user environment)
_FOO_BAR_CEL_GO = "ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo.bar\n | ^"


def _foo_bar_compile_error(path: str) -> str:
    return f'{path}: Invalid value: "foo.bar": compilation failed:{COMPILER_MARKER}{_FOO_BAR_CEL_GO}'


_PREFIX_REQUIRED = "prefix is required when claim is set. It can be set to an empty string to disable prefixing"
_RESERVED = "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"

_DISALLOWED_NA = "disallowed issuers (kube-apiserver's --service-account-issuer list) have no counterpart in the proxy"
_GATE_OFF_NA = "needs StructuredAuthenticationConfigurationEgressSelector off (default on) and is about egress selector"

_T_AC = "TestValidateAuthenticationConfiguration"
_T_URL = "TestValidateIssuerURL"
_T_DISC = "TestValidateIssuerDiscoveryURL"
_T_AUD = "TestValidateAudiences"
_T_CA = "TestValidateCertificateAuthority"
_T_CVR = "TestValidateClaimValidationRules"
_T_CM = "TestValidateClaimMappings"
_T_UVR = "TestValidateUserValidationRules"

# Self-signed ECDSA P-256 CA, CN=test-ca, valid 2026-01-01..2125-12-08. Go generates a fresh one per run
# (certutil.NewSelfSignedCACert); validation only parses it, so any well-formed certificate will do.
_VALID_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBNjCB3qADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB3Rlc3QtY2Ew
IBcNMjYwMTAxMDAwMDAwWhgPMjEyNTEyMDgwMDAwMDBaMBIxEDAOBgNVBAMMB3Rl
c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQLXs5SZ9cztgRpQ1GrJIMj
emrOwaa053AeTndFAI6kuROBKQZXxvb3VhjwWegixY2bwY+G2EuwKzvdGBa1cvpi
oyMwITAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDAKBggqhkjOPQQD
AgNHADBEAiA0cUBv+H06JlTCD0y+MenaIU822gskp3BOGLYgMWwnZgIgUva77ZKu
XgCP9cIjSrsn41lJ3ML4pxdthu/Lg59eoaw=
-----END CERTIFICATE-----
"""

# --------------------------------------------------------------------------------------------------------------------
# TestValidateAuthenticationConfiguration (27)

_AC_CASES: list[ConfigCase] = [
    ConfigCase(_T_AC, "jwt authenticator is empty", _doc(), ()),
    ConfigCase(
        _T_AC,
        "duplicate issuer across jwt authenticators",
        _doc(_ac_jwt(), _ac_jwt()),
        ('jwt[1].issuer.url: Duplicate value: "https://issuer-url"',),
    ),
    ConfigCase(
        _T_AC,
        "duplicate discoveryURL across jwt authenticators",
        _doc(
            _ac_jwt(discoveryURL="https://discovery-url/.well-known/openid-configuration"),
            _ac_jwt(
                url="https://different-issuer-url",
                discoveryURL="https://discovery-url/.well-known/openid-configuration",
            ),
        ),
        ('jwt[1].issuer.discoveryURL: Duplicate value: "https://discovery-url/.well-known/openid-configuration"',),
    ),
    ConfigCase(
        _T_AC,
        "failed issuer validation",
        _doc(
            _jwt(
                issuer=_issuer(url="invalid-url"),
                claim_mappings={"username": {"claim": "claim", "prefix": "prefix"}},
            )
        ),
        ('jwt[0].issuer.url: Invalid value: "invalid-url": URL scheme must be https',),
    ),
    ConfigCase(
        _T_AC,
        "failed claimValidationRule validation",
        _doc(
            _jwt(
                claim_validation_rules=[
                    {"claim": "foo", "requiredValue": "bar"},
                    {"claim": "foo", "requiredValue": "baz"},
                ],
                claim_mappings={"username": {"claim": "claim", "prefix": "prefix"}},
            )
        ),
        ('jwt[0].claimValidationRules[1].claim: Duplicate value: "foo"',),
    ),
    ConfigCase(
        _T_AC,
        "failed claimMapping validation",
        _doc(
            _jwt(
                claim_validation_rules=[{"claim": "foo", "requiredValue": "bar"}],
                claim_mappings={"username": {"prefix": "prefix"}},
            )
        ),
        ("jwt[0].claimMappings.username: Required value: claim or expression is required",),
    ),
    ConfigCase(
        _T_AC,
        "failed userValidationRule validation",
        _doc(
            _jwt(
                claim_validation_rules=[{"claim": "foo", "requiredValue": "bar"}],
                claim_mappings={"username": {"claim": "sub", "prefix": "prefix"}},
                user_validation_rules=[
                    {"expression": "user.username == 'foo'"},
                    {"expression": "user.username == 'foo'"},
                ],
            )
        ),
        ("jwt[0].userValidationRules[1].expression: Duplicate value: \"user.username == 'foo'\"",),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration with disallowed issuer",
        _doc(_ac_jwt()),
        (
            'jwt[0].issuer.url: Invalid value: "https://issuer-url": '
            "URL must not overlap with disallowed issuers: [a b c https://issuer-url]",
        ),
        applies=False,
        not_applicable=_DISALLOWED_NA + ' (Go passes disallowedIssuers ["a", "b", "https://issuer-url", "c"])',
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration with invalid egress type",
        _doc(_ac_jwt(egressSelectorType="panda")),
        (
            'jwt[0].issuer.egressSelectorType: Invalid value: "panda": '
            "egress selector must be either controlplane or cluster",
        ),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration with valid egress type with "
        "StructuredAuthenticationConfigurationEgressSelector feature disabled",
        _doc(_ac_jwt(egressSelectorType="controlplane")),
        (
            'jwt[0].issuer.egressSelectorType: Invalid value: "controlplane": egress selector is not supported when '
            "StructuredAuthenticationConfigurationEgressSelector feature gate is disabled",
        ),
        applies=False,
        not_applicable=_GATE_OFF_NA,
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration with valid egress type with GA features only",
        _doc(_ac_jwt(egressSelectorType="controlplane")),
        (
            'jwt[0].issuer.egressSelectorType: Invalid value: "controlplane": egress selector is not supported when '
            "StructuredAuthenticationConfigurationEgressSelector feature gate is disabled",
        ),
        applies=False,
        not_applicable="needs AllAlpha=false,AllBeta=false (egress gate off) and is about egress selector",
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration with valid egress type",
        _doc(_ac_jwt(egressSelectorType="cluster")),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified email",
        _ac_email("claims.email"),
        (f'{_EMAIL_PATH}: Invalid value: "claims.email": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that almost uses unverified email",
        _ac_email("claims.email_"),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified email join",
        _ac_email("['yay', string(claims.email), 'panda'].join(' ')"),
        (f"{_EMAIL_PATH}: Invalid value: \"['yay', string(claims.email), 'panda'].join(' ')\": {EMAIL_DETAIL}",),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified optional email",
        _ac_email("claims.?email"),
        (f'{_EMAIL_PATH}: Invalid value: "claims.?email": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified optional map email key",
        _ac_email('{claims.?email: "panda"}'),
        (f'{_EMAIL_PATH}: Invalid value: "{{claims.?email: \\"panda\\"}}": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified optional map email value",
        _ac_email('{"fancy": claims.?email}'),
        (f'{_EMAIL_PATH}: Invalid value: "{{\\"fancy\\": claims.?email}}": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses unverified email value in list iteration",
        _ac_email('["a"].map(i, i + claims.email)'),
        (f'{_EMAIL_PATH}: Invalid value: "[\\"a\\"].map(i, i + claims.email)": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses verified email join via rule",
        _doc(
            _jwt(
                claim_validation_rules=[{"expression": 'string(claims.email_verified) == "panda"'}],
                claim_mappings={"username": {"expression": "['yay', string(claims.email), 'panda'].join(' ')"}},
            )
        ),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses verified email join via extra",
        _ac_email(
            "['yay', string(claims.email), 'panda'].join(' ')",
            extra=[{"key": "panda.io/foo", "valueExpression": "claims.email_verified.upperAscii()"}],
        ),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses verified email join via extra optional",
        _ac_email(
            "['yay', string(claims.email), 'panda'].join(' ')",
            extra=[{"key": "panda.io/foo", "valueExpression": "claims.?email_verified"}],
        ),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses email and email_verified || true via username",
        _ac_email("claims.?email_verified.orValue(true) ? claims.email : claims.sub"),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses email and email_verified || false via username",
        _ac_email("claims.?email_verified.orValue(false) ? claims.email : claims.sub"),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses verified email via claim validation rule",
        _doc(
            _jwt(
                claim_validation_rules=[{"expression": "claims.?email_verified.orValue(true) == true"}],
                claim_mappings={"username": {"expression": '{claims.?email: "panda"}'}},
            )
        ),
        (),
    ),
    ConfigCase(
        _T_AC,
        "valid authentication configuration that uses verified email via claim validation rule incorrectly",
        _doc(
            _jwt(
                claim_validation_rules=[{"expression": "claims.?email_verified.orValue(true)"}],
                claim_mappings={"username": {"expression": '{claims.?email: "panda"}'}},
            )
        ),
        (
            'jwt[0].claimValidationRules[0].expression: Invalid value: "claims.?email_verified.orValue(true)": '
            "must evaluate to bool",
            f'{_EMAIL_PATH}: Invalid value: "{{claims.?email: \\"panda\\"}}": {EMAIL_DETAIL}',
        ),
    ),
    ConfigCase(_T_AC, "valid authentication configuration", _doc(_ac_jwt()), ()),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateIssuerURL (8)

_URL_CASES: list[ConfigCase] = [
    ConfigCase(_T_URL, "url is empty", _doc(_jwt(issuer=_issuer(url=""))), ("jwt[0].issuer.url: Required value",)),
    ConfigCase(
        _T_URL,
        "url parse error",
        _doc(_jwt(issuer=_issuer(url="https://issuer-url:invalid-port"))),
        (
            'jwt[0].issuer.url: Invalid value: "https://issuer-url:invalid-port": '
            'parse "https://issuer-url:invalid-port": invalid port ":invalid-port" after host',
        ),
    ),
    ConfigCase(
        _T_URL,
        "url is not https",
        _doc(_jwt(issuer=_issuer(url="http://issuer-url"))),
        ('jwt[0].issuer.url: Invalid value: "http://issuer-url": URL scheme must be https',),
    ),
    ConfigCase(
        _T_URL,
        "url user info is not allowed",
        _doc(_jwt(issuer=_issuer(url="https://user:pass@issuer-url"))),
        (
            'jwt[0].issuer.url: Invalid value: "https://user:pass@issuer-url": '
            "URL must not contain a username or password",
        ),
    ),
    ConfigCase(
        _T_URL,
        "url raw query is not allowed",
        _doc(_jwt(issuer=_issuer(url="https://issuer-url?query"))),
        ('jwt[0].issuer.url: Invalid value: "https://issuer-url?query": URL must not contain a query',),
    ),
    ConfigCase(
        _T_URL,
        "url fragment is not allowed",
        _doc(_jwt(issuer=_issuer(url="https://issuer-url#fragment"))),
        ('jwt[0].issuer.url: Invalid value: "https://issuer-url#fragment": URL must not contain a fragment',),
    ),
    ConfigCase(
        _T_URL,
        "valid url that is disallowed",
        _doc(_jwt()),
        (
            'jwt[0].issuer.url: Invalid value: "https://issuer-url": '
            "URL must not overlap with disallowed issuers: [https://issuer-url]",
        ),
        applies=False,
        not_applicable=_DISALLOWED_NA + ' (Go passes disallowedIssuers {"https://issuer-url"})',
    ),
    ConfigCase(_T_URL, "valid url", _doc(_jwt()), ()),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateIssuerDiscoveryURL (12). Go passes issuerURL "" unless the case sets it, which skips the
# "different from URL" check; here the url is https://issuer-url, which differs from every such discoveryURL.


def _disc(discovery_url: str, issuer_url: str = "https://issuer-url") -> dict[str, Any]:
    return _doc(_jwt(issuer=_issuer(url=issuer_url, discoveryURL=discovery_url)))


_DISC_CASES: list[ConfigCase] = [
    ConfigCase(_T_DISC, "url is empty", _disc(""), ()),
    ConfigCase(
        _T_DISC,
        "url parse error",
        _disc("https://oidc.oidc-namespace.svc:invalid-port"),
        (
            'jwt[0].issuer.discoveryURL: Invalid value: "https://oidc.oidc-namespace.svc:invalid-port": '
            'parse "https://oidc.oidc-namespace.svc:invalid-port": invalid port ":invalid-port" after host',
        ),
    ),
    ConfigCase(
        _T_DISC,
        "url is not https",
        _disc("http://oidc.oidc-namespace.svc"),
        ('jwt[0].issuer.discoveryURL: Invalid value: "http://oidc.oidc-namespace.svc": URL scheme must be https',),
    ),
    ConfigCase(
        _T_DISC,
        "url user info is not allowed",
        _disc("https://user:pass@oidc.oidc-namespace.svc"),
        (
            'jwt[0].issuer.discoveryURL: Invalid value: "https://user:pass@oidc.oidc-namespace.svc": '
            "URL must not contain a username or password",
        ),
    ),
    ConfigCase(
        _T_DISC,
        "url raw query is not allowed",
        _disc("https://oidc.oidc-namespace.svc?query"),
        (
            'jwt[0].issuer.discoveryURL: Invalid value: "https://oidc.oidc-namespace.svc?query": '
            "URL must not contain a query",
        ),
    ),
    ConfigCase(
        _T_DISC,
        "url fragment is not allowed",
        _disc("https://oidc.oidc-namespace.svc#fragment"),
        (
            'jwt[0].issuer.discoveryURL: Invalid value: "https://oidc.oidc-namespace.svc#fragment": '
            "URL must not contain a fragment",
        ),
    ),
    ConfigCase(_T_DISC, "valid url", _disc("https://oidc.oidc-namespace.svc"), ()),
    ConfigCase(_T_DISC, "valid url with path", _disc("https://oidc.oidc-namespace.svc/path"), ()),
    ConfigCase(
        _T_DISC,
        "discovery url same as issuer url",
        _disc("https://issuer-url", "https://issuer-url"),
        ('jwt[0].issuer.discoveryURL: Invalid value: "https://issuer-url": discoveryURL must be different from URL',),
    ),
    ConfigCase(
        _T_DISC,
        "discovery url same as issuer url, with trailing slash",
        _disc("https://issuer-url/", "https://issuer-url"),
        ('jwt[0].issuer.discoveryURL: Invalid value: "https://issuer-url/": discoveryURL must be different from URL',),
    ),
    ConfigCase(
        _T_DISC,
        "discovery url same as issuer url, with multiple trailing slashes",
        _disc("https://issuer-url///", "https://issuer-url"),
        (
            'jwt[0].issuer.discoveryURL: Invalid value: "https://issuer-url///": '
            "discoveryURL must be different from URL",
        ),
    ),
    ConfigCase(
        _T_DISC,
        "discovery url same as issuer url, issuer url with trailing slash",
        _disc("https://issuer-url", "https://issuer-url/"),
        ('jwt[0].issuer.discoveryURL: Invalid value: "https://issuer-url": discoveryURL must be different from URL',),
    ),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateAudiences (8)


def _aud(audiences: list[str], match_policy: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"audiences": audiences}
    if match_policy is not None:
        fields["audienceMatchPolicy"] = match_policy
    return _doc(_jwt(issuer=_issuer(**fields)))


_AUD_CASES: list[ConfigCase] = [
    ConfigCase(
        _T_AUD,
        "audiences is empty",
        _aud([]),
        ("jwt[0].issuer.audiences: Required value: at least one jwt[0].issuer.audiences is required",),
    ),
    ConfigCase(_T_AUD, "audience is empty", _aud([""]), ("jwt[0].issuer.audiences[0]: Required value",)),
    ConfigCase(
        _T_AUD,
        "invalid match policy with single audience",
        _aud(["audience"], "MatchExact"),
        (
            'jwt[0].issuer.audienceMatchPolicy: Invalid value: "MatchExact": '
            "audienceMatchPolicy must be empty or MatchAny for single audience",
        ),
    ),
    ConfigCase(_T_AUD, "valid audience", _aud(["audience"]), ()),
    ConfigCase(_T_AUD, "valid audience with MatchAny policy", _aud(["audience"], "MatchAny"), ()),
    ConfigCase(
        _T_AUD,
        "duplicate audience",
        _aud(["audience", "audience"], "MatchAny"),
        ('jwt[0].issuer.audiences[1]: Duplicate value: "audience"',),
    ),
    ConfigCase(
        _T_AUD,
        "match policy not set with multiple audiences",
        _aud(["audience1", "audience2"]),
        (
            'jwt[0].issuer.audienceMatchPolicy: Invalid value: "": '
            "audienceMatchPolicy must be MatchAny for multiple audiences",
        ),
    ),
    ConfigCase(_T_AUD, "valid multiple audiences", _aud(["audience1", "audience2"], "MatchAny"), ()),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateCertificateAuthority (3)

_CA_CASES: list[ConfigCase] = [
    ConfigCase(
        _T_CA,
        "invalid certificate authority",
        _doc(_jwt(issuer=_issuer(certificateAuthority="invalid"))),
        (
            'jwt[0].issuer.certificateAuthority: Invalid value: "<omitted>": '
            "data does not contain any valid RSA or ECDSA certificates",
        ),
    ),
    ConfigCase(_T_CA, "certificate authority is empty", _doc(_jwt(issuer=_issuer(certificateAuthority=""))), ()),
    ConfigCase(
        _T_CA, "valid certificate authority", _doc(_jwt(issuer=_issuer(certificateAuthority=_VALID_CA_PEM))), ()
    ),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateClaimValidationRules (12)


def _cvr(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return _doc(_jwt(claim_validation_rules=rules))


_CVR_CASES: list[ConfigCase] = [
    ConfigCase(
        _T_CVR,
        "claim and expression are empty, structured authn feature enabled",
        _cvr([{}]),
        ("jwt[0].claimValidationRules[0]: Required value: claim or expression is required",),
    ),
    ConfigCase(
        _T_CVR,
        "claim and expression are set",
        _cvr([{"claim": "claim", "expression": "expression"}]),
        ('jwt[0].claimValidationRules[0]: Invalid value: "claim": claim and expression can\'t both be set',),
    ),
    ConfigCase(
        _T_CVR,
        "message set when claim is set",
        _cvr([{"claim": "claim", "message": "message"}]),
        ('jwt[0].claimValidationRules[0].message: Invalid value: "message": may not be specified when claim is set',),
    ),
    ConfigCase(
        _T_CVR,
        "requiredValue set when expression is set",
        _cvr([{"expression": "claims.foo == 'bar'", "requiredValue": "value"}]),
        (
            'jwt[0].claimValidationRules[0].requiredValue: Invalid value: "value": '
            "may not be specified when expression is set",
        ),
    ),
    ConfigCase(
        _T_CVR,
        "duplicate claim",
        _cvr([{"claim": "claim"}, {"claim": "claim"}]),
        ('jwt[0].claimValidationRules[1].claim: Duplicate value: "claim"',),
    ),
    ConfigCase(
        _T_CVR,
        "duplicate expression",
        _cvr([{"expression": "claims.foo == 'bar'"}, {"expression": "claims.foo == 'bar'"}]),
        ("jwt[0].claimValidationRules[1].expression: Duplicate value: \"claims.foo == 'bar'\"",),
    ),
    ConfigCase(
        _T_CVR,
        "CEL expression compilation error",
        _cvr([{"expression": "foo.bar"}]),
        (_foo_bar_compile_error("jwt[0].claimValidationRules[0].expression"),),
    ),
    ConfigCase(
        _T_CVR,
        "expression does not evaluate to bool",
        _cvr([{"expression": "claims.foo"}]),
        ('jwt[0].claimValidationRules[0].expression: Invalid value: "claims.foo": must evaluate to bool',),
    ),
    ConfigCase(
        _T_CVR,
        "valid claim validation rule with expression",
        _cvr([{"expression": "claims.foo == 'bar'"}]),
        (),
    ),
    ConfigCase(
        _T_CVR,
        "valid claim validation rule with multiple rules and email_verified check",
        _cvr(
            [
                {"claim": "claim1", "requiredValue": "value1"},
                {"claim": "claim2", "requiredValue": "value2"},
                {"expression": "has(claims.email_verified)"},
            ]
        ),
        (),
    ),
    ConfigCase(
        _T_CVR,
        "valid claim validation rule with multiple rules and almost email_verified check",
        _cvr(
            [
                {"claim": "claim1", "requiredValue": "value1"},
                {"claim": "claim2", "requiredValue": "value2"},
                {"expression": "has(claims.email_verified_)"},
            ]
        ),
        (),
    ),
    ConfigCase(
        _T_CVR,
        "valid claim validation rule with multiple rules",
        _cvr(
            [
                {"claim": "claim1", "requiredValue": "value1"},
                {"claim": "claim2", "requiredValue": "claims.email_verified"},
            ]
        ),
        (),
    ),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateClaimMappings (32)


def _cm(mappings: dict[str, Any], claim_validation_rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return _doc(_jwt(claim_mappings=mappings, claim_validation_rules=claim_validation_rules))


def _cm_user_claim(**others: Any) -> dict[str, Any]:
    """Mappings with username claim "claim", prefix "prefix" plus the given groups/uid/extra."""
    mappings: dict[str, Any] = {"username": {"claim": "claim", "prefix": "prefix"}}
    mappings.update(others)
    return _cm(mappings)


def _cm_expr_extra(key: str, value_expression: str = "claims.extra") -> dict[str, Any]:
    """Mappings with username/groups expressions and a single extra mapping."""
    return _cm(
        {
            "username": {"expression": "claims.username"},
            "groups": {"expression": "claims.groups"},
            "extra": [{"key": key, "valueExpression": value_expression}],
        }
    )


def _cm_full(username_expression: str, extra_value_expression: str = "claims.extra") -> dict[str, Any]:
    """username/groups/uid expressions and extra example.org/foo, as in the email cases."""
    return {
        "username": {"expression": username_expression},
        "groups": {"expression": "claims.groups"},
        "uid": {"expression": "claims.uid"},
        "extra": [{"key": "example.org/foo", "valueExpression": extra_value_expression}],
    }


_CM_CASES: list[ConfigCase] = [
    ConfigCase(
        _T_CM,
        "username expression and claim are set",
        _cm({"username": {"claim": "claim", "expression": "claims.username"}}),
        ('jwt[0].claimMappings.username: Invalid value: "": claim and expression can\'t both be set',),
    ),
    ConfigCase(
        _T_CM,
        "username expression and claim are empty",
        _cm({"username": {}}),
        ("jwt[0].claimMappings.username: Required value: claim or expression is required",),
    ),
    ConfigCase(
        _T_CM,
        "username prefix set when expression is set",
        _cm({"username": {"expression": "claims.username", "prefix": "prefix"}}),
        ('jwt[0].claimMappings.username.prefix: Invalid value: "prefix": may not be specified when expression is set',),
    ),
    ConfigCase(
        _T_CM,
        "username prefix is nil when claim is set",
        _cm({"username": {"claim": "claim"}}),
        (f"jwt[0].claimMappings.username.prefix: Required value: {_PREFIX_REQUIRED}",),
    ),
    ConfigCase(
        _T_CM,
        "username expression is invalid",
        _cm({"username": {"expression": "foo.bar"}}),
        (_foo_bar_compile_error("jwt[0].claimMappings.username.expression"),),
    ),
    ConfigCase(
        _T_CM,
        "groups expression and claim are set",
        _cm_user_claim(groups={"claim": "claim", "expression": "claims.groups"}),
        ('jwt[0].claimMappings.groups: Invalid value: "": claim and expression can\'t both be set',),
    ),
    ConfigCase(
        _T_CM,
        "groups prefix set when expression is set",
        _cm_user_claim(groups={"expression": "claims.groups", "prefix": "prefix"}),
        ('jwt[0].claimMappings.groups.prefix: Invalid value: "prefix": may not be specified when expression is set',),
    ),
    ConfigCase(
        _T_CM,
        "groups prefix is nil when claim is set",
        _cm_user_claim(groups={"claim": "claim"}),
        (f"jwt[0].claimMappings.groups.prefix: Required value: {_PREFIX_REQUIRED}",),
    ),
    ConfigCase(
        _T_CM,
        "groups expression is invalid",
        _cm_user_claim(groups={"expression": "foo.bar"}),
        (_foo_bar_compile_error("jwt[0].claimMappings.groups.expression"),),
    ),
    ConfigCase(
        _T_CM,
        "uid claim and expression are set",
        _cm_user_claim(uid={"claim": "claim", "expression": "claims.uid"}),
        ('jwt[0].claimMappings.uid: Invalid value: "": claim and expression can\'t both be set',),
    ),
    ConfigCase(
        _T_CM,
        "uid expression is invalid",
        _cm_user_claim(uid={"expression": "foo.bar"}),
        (_foo_bar_compile_error("jwt[0].claimMappings.uid.expression"),),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key is empty",
        _cm_user_claim(extra=[{"key": "", "valueExpression": "claims.extra"}]),
        ("jwt[0].claimMappings.extra[0].key: Required value",),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping value expression is empty",
        _cm_user_claim(extra=[{"key": "example.org/foo", "valueExpression": ""}]),
        ("jwt[0].claimMappings.extra[0].valueExpression: Required value",),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping value expression is invalid",
        _cm_user_claim(extra=[{"key": "example.org/foo", "valueExpression": "foo.bar"}]),
        (_foo_bar_compile_error("jwt[0].claimMappings.extra[0].valueExpression"),),
    ),
    ConfigCase(
        _T_CM,
        "duplicate extra mapping key",
        _cm(
            {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "extra": [
                    {"key": "example.org/foo", "valueExpression": "claims.extra"},
                    {"key": "example.org/foo", "valueExpression": "claims.extras"},
                ],
            }
        ),
        ('jwt[0].claimMappings.extra[1].key: Duplicate value: "example.org/foo"',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key is not domain prefix path",
        _cm_expr_extra("foo"),
        (
            'jwt[0].claimMappings.extra[0].key: Invalid value: "foo": '
            'must be a domain-prefixed path (such as "acme.io/foo")',
        ),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key is not lower case",
        _cm_expr_extra("example.org/Foo"),
        ('jwt[0].claimMappings.extra[0].key: Invalid value: "example.org/Foo": must be lowercase',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key prefix is k8.io",
        _cm_expr_extra("k8s.io/foo"),
        (f'jwt[0].claimMappings.extra[0].key: Invalid value: "k8s.io/foo": {_RESERVED}',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key prefix contains k8.io",
        _cm_expr_extra("example.k8s.io/foo"),
        (f'jwt[0].claimMappings.extra[0].key: Invalid value: "example.k8s.io/foo": {_RESERVED}',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key prefix is kubernetes.io",
        _cm_expr_extra("kubernetes.io/foo"),
        (f'jwt[0].claimMappings.extra[0].key: Invalid value: "kubernetes.io/foo": {_RESERVED}',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key prefix contains kubernetes.io",
        _cm_expr_extra("example.kubernetes.io/foo"),
        (f'jwt[0].claimMappings.extra[0].key: Invalid value: "example.kubernetes.io/foo": {_RESERVED}',),
    ),
    ConfigCase(
        _T_CM,
        "extra mapping key prefix with ak8s.io, *.ak8s.io, bkubernetes.io, *.bkubernetes.io are still valid",
        _cm(
            {
                "username": {"expression": "claims.username"},
                "groups": {"expression": "claims.groups"},
                "extra": [
                    {"key": "ak8s.io/foo", "valueExpression": "claims.extra"},
                    {"key": "example.ak8s.io/foo", "valueExpression": "claims.extra"},
                    {"key": "bkubernetes.io/foo", "valueExpression": "claims.extra"},
                    {"key": "example.bkubernetes.io/foo", "valueExpression": "claims.extra"},
                ],
            }
        ),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings but uses email without verification",
        _cm(_cm_full("claims.email")),
        (f'{_EMAIL_PATH}: Invalid value: "claims.email": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings but uses email in complex CEL expression without verification",
        _cm(_cm_full("has(claims.email) ? claims.email : claims.sub")),
        (f'{_EMAIL_PATH}: Invalid value: "has(claims.email) ? claims.email : claims.sub": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings but uses email in CEL expression function without verification",
        _cm(_cm_full("claims.email.trim()")),
        (f'{_EMAIL_PATH}: Invalid value: "claims.email.trim()": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings and uses email with verification via extra",
        _cm(_cm_full("claims.email", "claims.email_verified")),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings and uses email with verification via extra optional",
        _cm(_cm_full("claims.email", 'has(claims.email_verified) ? string(claims.email_verified) : "false"')),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings and almost uses email with verification via extra optional",
        _cm(_cm_full("claims.email", 'has(claims.email_verified_) ? string(claims.email_verified_) : "false"')),
        (f'{_EMAIL_PATH}: Invalid value: "claims.email": {EMAIL_DETAIL}',),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings and uses email with verification via hasVerifiedEmail",
        # Go seeds state.usesEmailVerifiedClaim=true; a document gets that from a claim validation rule (see CASE_NOTES)
        _cm(
            _cm_full("claims.email"),
            claim_validation_rules=[{"expression": "claims.?email_verified.orValue(true) == true"}],
        ),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings that almost use claims.email",
        _cm(_cm_full("claims.email_")),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings that almost use claims.email via nesting",
        _cm(_cm_full("claims.other.claims.email")),
        (),
    ),
    ConfigCase(
        _T_CM,
        "valid claim mappings",
        _cm(_cm_full("claims.username")),
        (),
    ),
]

# --------------------------------------------------------------------------------------------------------------------
# TestValidateUserValidationRules (5)


def _uvr(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return _doc(_jwt(user_validation_rules=rules))


_UVR_CASES: list[ConfigCase] = [
    ConfigCase(
        _T_UVR,
        "user info validation rule, expression is empty",
        _uvr([{}]),
        ("jwt[0].userValidationRules[0].expression: Required value",),
    ),
    ConfigCase(
        _T_UVR,
        "duplicate expression",
        _uvr([{"expression": "user.username == 'foo'"}, {"expression": "user.username == 'foo'"}]),
        ("jwt[0].userValidationRules[1].expression: Duplicate value: \"user.username == 'foo'\"",),
    ),
    ConfigCase(
        _T_UVR,
        "expression is invalid",
        _uvr([{"expression": "foo.bar"}]),
        (_foo_bar_compile_error("jwt[0].userValidationRules[0].expression"),),
    ),
    ConfigCase(
        _T_UVR,
        "expression does not return bool",
        _uvr([{"expression": "user.username"}]),
        ('jwt[0].userValidationRules[0].expression: Invalid value: "user.username": must evaluate to bool',),
    ),
    ConfigCase(
        _T_UVR,
        "valid user info validation rule",
        _uvr(
            [
                {"expression": "user.username == 'foo'"},
                {
                    "expression": "!user.username.startsWith('system:')",
                    "message": "username cannot used reserved system: prefix",
                },
            ]
        ),
        (),
    ),
]

CASES: list[ConfigCase] = [
    *_AC_CASES,
    *_URL_CASES,
    *_DISC_CASES,
    *_AUD_CASES,
    *_CA_CASES,
    *_CVR_CASES,
    *_CM_CASES,
    *_UVR_CASES,
]

# Go-only assertions and embedding choices, keyed by (test, name). Informational; the runner need not use them.
_CEL_MAPPER_NOTE = (
    "Go also asserts wantCELMapper (compiled CEL programs are kept for every expression-based mapping); "
    "not observable from a document"
)
CASE_NOTES: dict[tuple[str, str], str] = {
    (_T_AC, "jwt authenticator is empty"): "Go input is an empty struct (jwt nil); here jwt is [].",
    (_T_AC, "valid authentication configuration that uses verified email via claim validation rule"): (
        "Username expression returns a map; validation accepts any type for mappings (checked only at runtime)."
    ),
    (_T_AC, "valid authentication configuration that uses verified email via claim validation rule incorrectly"): (
        "The rule fails the bool type check, so its email_verified reference does not count: both errors appear."
    ),
    (_T_CVR, "claim and expression are empty, structured authn feature enabled"): (
        "The name refers to a feature flag removed when structured authn went GA; no option remains."
    ),
    (_T_CVR, "valid claim validation rule with expression"): (
        "Go also asserts wantCELMapper (the compiled rule is kept); not observable from a document."
    ),
    (_T_CVR, "valid claim validation rule with multiple rules and email_verified check"): (
        "Go also asserts state.usesEmailVerifiedClaim == true. Observable equivalent: adding username expression "
        "'claims.email' to this document must stay valid."
    ),
    (_T_CVR, "valid claim validation rule with multiple rules and almost email_verified check"): (
        "Go also asserts state.usesEmailVerifiedClaim == false. Observable equivalent: adding username expression "
        "'claims.email' must then produce the email_verified error."
    ),
    (_T_CVR, "valid claim validation rule with multiple rules"): (
        "Go also asserts state.usesEmailVerifiedClaim == false: requiredValue text is not CEL and is not scanned."
    ),
    (_T_CM, "valid claim mappings and uses email with verification via hasVerifiedEmail"): (
        "Go seeds validationState.usesEmailVerifiedClaim=true, as an earlier claim validation rule would. Here the "
        "document carries claimValidationRules [{expression: 'claims.?email_verified.orValue(true) == true'}] to "
        "produce that state."
    ),
    (_T_UVR, "valid user info validation rule"): (
        "Go also asserts wantCELMapper (the compiled rules are kept); not observable from a document."
    ),
}
for _case in _CM_CASES:
    if _case.name.startswith("valid claim mappings"):
        CASE_NOTES.setdefault((_case.test, _case.name), _CEL_MAPPER_NOTE)


RULES_SUMMARY: str = r"""
kube-apiserver AuthenticationConfiguration JWT validation (k8s.io/apiserver@24a394e pkg/apis/apiserver/validation/
validation.go ValidateAuthenticationConfiguration; apimachinery@eed236c field errors and IsDomainPrefixedPath;
client-go util/cert). Every rule, in evaluation order, with the exact detail strings.

0. ERROR RENDERING (field.Error.Error())
   "<path>: <Type>" + (": <value>" for Invalid/Duplicate/Too many) + (": <detail>" if detail non-empty).
   - Types used here: "Required value" (never shows a value), "Invalid value", "Duplicate value" (no detail),
     "Too many".
   - Plain Go string values are rendered with Go %q: double-quoted, with \" and \\ escaped and non-printable runes
     escaped. Named string types (audienceMatchPolicy, egressSelectorType) are JSON-encoded, which is the same for
     plain ASCII (JSON would escape <, >, & as \u003c ...). Integers are printed bare.
   - Paths: "jwt[i].issuer.url", "jwt[i].issuer.discoveryURL", "jwt[i].issuer.audiences[j]",
     "jwt[i].issuer.audienceMatchPolicy", "jwt[i].issuer.certificateAuthority", "jwt[i].issuer.egressSelectorType",
     "jwt[i].claimValidationRules[j](.claim|.message|.requiredValue|.expression)",
     "jwt[i].claimMappings.(username|groups)(.prefix|.expression)", "jwt[i].claimMappings.uid(.expression)",
     "jwt[i].claimMappings.extra[j].(key|valueExpression)", "jwt[i].userValidationRules[j].expression".
   - All errors are collected, none is fatal except where noted. The aggregate drops messages identical to an
     earlier one.
   - Order: for each authenticator i, its own errors (issuer.url, discoveryURL, audiences, audienceMatchPolicy,
     certificateAuthority, egressSelectorType, claimValidationRules, claimMappings, userValidationRules), then its
     duplicate-url and duplicate-discoveryURL errors. After all authenticators come the anonymous errors.
   - Fields have no defaults (v1 has no defaulting for JWT). Missing and empty are the same thing, except "prefix",
     which is a pointer: absent or null = nil, "" = set.

1. TOP LEVEL
   - 0 authenticators is valid ("jwt" absent or []).
   - len(jwt) > 64: one error and nothing else is validated: "jwt: Too many: <n>: must have at most 64 items".
   - After validating authenticator i: if issuer.url equals an earlier authenticator's url (exact string compare;
     "" counts too) -> "jwt[i].issuer.url: Duplicate value: \"<url>\"".
   - If issuer.discoveryURL is non-empty and equals an earlier non-empty discoveryURL (exact string, no trailing-slash
     normalisation) -> "jwt[i].issuer.discoveryURL: Duplicate value: \"<discoveryURL>\"".
   - Out of scope for the proxy: anonymous. If "anonymous" is present with enabled=false and non-empty conditions ->
     "anonymous.conditions: Invalid value: <conditions>: enabled should be set to true when conditions are defined".
     validation.go has no other anonymous rule.

2. issuer.url
   - "" -> "jwt[i].issuer.url: Required value" (no detail; no further url checks).
   - kube-apiserver only: url in disallowedIssuers (its --service-account-issuer values) -> Invalid "<url>": "URL must
     not overlap with disallowed issuers: [<sorted list, space separated>]". This is emitted before the parse
     checks, which still run. Not applicable to the proxy.
   - Go net/url.Parse(url) fails -> Invalid "<url>": "parse \"<url>\": <reason>", and no more url checks. Example
     reason: `invalid port ":invalid-port" after host` (text after the last ':' of the host is not all digits).
     Other Go reasons: "net/url: invalid control character in URL" (a byte < 0x20 or 0x7f), "missing protocol
     scheme" (starts with ':'; ":foo" -> "parse \":foo\": missing protocol scheme"),
     "first path segment in URL cannot contain colon", `invalid URL escape "%zz"`,
     `invalid character " " in host name`, "missing ']' in host", "net/url: invalid userinfo".
   - These four are independent and can stack, in this order:
       scheme (Go lowercases it, so "HTTPS://x" passes) != "https"  -> "URL scheme must be https"
       userinfo present (any '@' in the authority, even "https://@host") ->
                                                              "URL must not contain a username or password"
       non-empty raw query ("https://h?" has an empty query and passes)     -> "URL must not contain a query"
       non-empty fragment ("https://h#" passes)                             -> "URL must not contain a fragment"
   - Not checked: host presence (e.g. "https:opaque" passes), path, ".well-known" suffix, trailing slash.
     "invalid-url" parses as a bare path: only "URL scheme must be https".
   - The url must equal the token's iss claim exactly at runtime (not a validation rule).

3. issuer.discoveryURL (optional)
   - "" -> no checks.
   - url non-empty and TrimRight(url, "/") == TrimRight(discoveryURL, "/") (strip all trailing '/', then compare
     exactly) -> Invalid "<discoveryURL>": "discoveryURL must be different from URL".
   - Then the same parse, scheme, userinfo, query and fragment checks as issuer.url, with the same details, at
     path jwt[i].issuer.discoveryURL. There is no disallowed-issuers check. Both kinds of error can stack.

4. issuer.audiences / issuer.audienceMatchPolicy
   - Empty list -> "jwt[i].issuer.audiences: Required value: at least one jwt[i].issuer.audiences is required". The
     detail contains the field path itself. Nothing else is checked for audiences or the policy.
   - For each entry j, in order (both errors can apply to the same entry):
       "" -> "jwt[i].issuer.audiences[j]: Required value"
       equal to an earlier entry (exact; a second "" also counts) ->
           "jwt[i].issuer.audiences[j]: Duplicate value: \"<a>\""
   - More than one audience and policy != "MatchAny" (case-sensitive, "" included) ->
     "jwt[i].issuer.audienceMatchPolicy: Invalid value: \"<policy>\": audienceMatchPolicy must be MatchAny for
     multiple audiences"
   - Exactly one audience and policy not in {"", "MatchAny"} ->
     "jwt[i].issuer.audienceMatchPolicy: Invalid value: \"<policy>\": audienceMatchPolicy must be empty or MatchAny
     for single audience"

5. issuer.certificateAuthority (PEM text, optional)
   - "" -> no checks. Otherwise it is parsed like client-go cert.NewPoolFromBytes:
     decode PEM blocks in order (text before, between and after blocks is ignored); skip blocks whose type is not
     exactly "CERTIFICATE" or that have PEM headers; each CERTIFICATE block must parse as X.509 DER, otherwise
     Invalid "<omitted>": <Go crypto/x509 parse error text> (e.g. "x509: malformed certificate"), and parsing stops.
   - No CERTIFICATE block found -> "jwt[i].issuer.certificateAuthority: Invalid value: \"<omitted>\": data does not
     contain any valid RSA or ECDSA certificates". The value is always the literal "<omitted>".
   - Expiry, CA flag and key type are not checked (the message says RSA or ECDSA, but any parseable certificate
     passes).

6. issuer.egressSelectorType
   - kube-apiserver: "" -> ok. If feature gate StructuredAuthenticationConfigurationEgressSelector is off (it is on
     by default) -> Invalid "<t>": "egress selector is not supported when
     StructuredAuthenticationConfigurationEgressSelector feature gate is disabled". Independently, if not
     "controlplane" or "cluster" -> Invalid "<t>": "egress selector must be either controlplane or cluster".
   - PROXY DEVIATION: "cluster" is accepted (the proxy runs in the cluster: its connections are the cluster's
     egress); "controlplane" is refused at jwt[i].issuer.egressSelectorType with the proxy's own message.

7. claimValidationRules[j]. The first matching branch applies:
   a. claim != "" and expression != "" -> "jwt[i].claimValidationRules[j]: Invalid value: \"<claim>\": claim and
      expression can't both be set". No other check on this rule.
   b. both "" -> "jwt[i].claimValidationRules[j]: Required value: claim or expression is required"
   c. claim set:
      - message != "" -> "...[j].message: Invalid value: \"<message>\": may not be specified when claim is set"
      - claim equal to an earlier rule's claim -> "...[j].claim: Duplicate value: \"<claim>\""
      - requiredValue is free; "" means the claim must equal "" at runtime. It is not CEL and is never scanned.
   d. expression set:
      - requiredValue != "" -> "...[j].requiredValue: Invalid value: \"<rv>\": may not be specified when expression
        is set"
      - expression equal (exact string) to an earlier rule's expression -> "...[j].expression: Duplicate value:
        \"<expr>\"", and the rule is not compiled.
      - Compile in the claims environment (variable `claims`: map(string, dyn)). Compile failure ->
        "...[j].expression: Invalid value: \"<expr>\": compilation failed: <compiler issues>".
      - The checked output type must be exactly bool; dyn is NOT accepted. So "claims.foo" and
        "claims.?email_verified.orValue(true)" fail, and "claims.?email_verified.orValue(true) == true" passes ->
        "...[j].expression: Invalid value: \"<expr>\": must evaluate to bool".
      - message is free text (not CEL, not validated).
   Only rules that compiled and passed the bool check are scanned for claims.email_verified (see 9).

8. claimMappings
   username (required) and groups (optional) are PrefixedClaimOrExpression {claim, prefix, expression}. The first
   matching branch applies (<f> = jwt[i].claimMappings.username or .groups):
   a. claim != "" and expression != "" -> "<f>: Invalid value: \"\": claim and expression can't both be set" (the
      value is always "").
   b. both "" -> username: "jwt[i].claimMappings.username: Required value: claim or expression is required".
      groups: no error, and a prefix alone is ignored.
   c. expression set:
      - prefix present (not nil, even "") -> "<f>.prefix: Invalid value: \"<prefix>\": may not be specified when
        expression is set"
      - compile (claims environment, any result type) -> on failure "<f>.expression: Invalid value: \"<expr>\":
        compilation failed: <issues>"
   d. claim set and prefix nil -> "<f>.prefix: Required value: prefix is required when claim is set. It can be set to
      an empty string to disable prefixing"
   uid is ClaimOrExpression {claim, expression} and has no prefix:
      - both set -> "jwt[i].claimMappings.uid: Invalid value: \"\": claim and expression can't both be set"
      - expression set -> compile (any type); failure at jwt[i].claimMappings.uid.expression
        ("... compilation failed: ...")
      - neither set -> ok
   extra[j] {key, valueExpression}, in list order. Steps a-c all run and can stack:
   a. IsDomainPrefixedPath(key):
      - key "" -> "jwt[i].claimMappings.extra[j].key: Required value" (and a is done)
      - split on the first "/"; no "/", empty domain or empty path -> Invalid "<key>": "must be a domain-prefixed path
        (such as \"acme.io/foo\")" (and a is done)
      - domain must be a DNS-1123 subdomain. Each failure is reported with the DOMAIN (not the key) as the value:
          len(domain) > 253 -> Invalid "<domain>": "must be no more than 253 characters"
          not matching ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ -> Invalid "<domain>":
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must
            start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is
            '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
      - path (everything after the first "/") not matching ^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$ -> Invalid "<path>"
        (the path part as the value): "Invalid path (regex used for validation is '[A-Za-z0-9/\-._~%!$&'()*+,;=:]+')"
   b. key != lowercase(key) -> Invalid "<key>": "must be lowercase" (Go strings.ToLower, Unicode-aware). An uppercase
      domain therefore gets both the RFC 1123 error and this one.
   c. The domain prefix is the text before the first "/", or "" if there is no "/". If it is == "kubernetes.io",
      ends with ".kubernetes.io", == "k8s.io" or ends with ".k8s.io" (case-sensitive) -> Invalid "<key>": "k8s.io,
      kubernetes.io and their subdomains are reserved for Kubernetes use". "ak8s.io", "x.bkubernetes.io" are allowed.
   d. key equal (exact) to an earlier mapping's key, invalid keys and "" included -> "jwt[i].claimMappings.extra[j].key:
      Duplicate value: \"<key>\"". Skip e and f for this mapping.
   e. valueExpression "" -> "jwt[i].claimMappings.extra[j].valueExpression: Required value". Skip f.
   f. compile (claims environment, any type); failure at "...extra[j].valueExpression" ("compilation failed: ...").
   EMAIL RULE. Checked last in claimMappings, after all extra errors:
      usesEmail = the username expression took branch (c) with NO username error (no prefix error, compiled) AND its
                  AST references claims.email.
      usesEmailVerified = claims.email_verified is referenced in ANY of:
                  (1) a claimValidationRules expression that compiled and passed the bool check (section 7);
                  (2) the username expression (same condition as usesEmail);
                  (3) an extra valueExpression that compiled (not skipped by d/e).
                  groups/uid expressions, userValidationRules, claim/requiredValue strings and rules that failed do
                  NOT count.
      usesEmail and not usesEmailVerified -> "jwt[i].claimMappings.username.expression: Invalid value:
      \"<username expression>\": claims.email_verified must be used in claimMappings.username.expression or
      claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in
      claimMappings.username.expression"
      Only the username expression is scanned for claims.email. A username set by claim "email" is never flagged.
      A username expression with any username error is not scanned: {expression: "claims.email", prefix: ""} gives
      only the prefix error.
      "References claims.<f>" is a walk over the parsed/checked AST after macro expansion. A node matches when it is:
        - a field selection X.<f> (including the has(X.<f>) test-only select) whose operand X is the bare identifier
          `claims`, with field name exactly <f>; or
        - an optional field selection claims.?<f> (call "_?._" with args [ident claims, string constant "<f>"]).
      The walk recurses into select operands; call arguments and call targets (receiver methods like .trim(),
      .upperAscii(), .orValue(), operators ?: + == !, conversions like string()); list elements; map/struct literal
      keys and values; comprehensions (map/filter/all/exists/exists_one macros): iter range, accu init, loop
      condition, loop step, result. Constants and identifiers do not match.
      Not matched: index syntax claims["email"] or claims[?"email"]; nested claims.other.claims.email (the operand
      is not the identifier); claims.email_ or claims.email_verified_ (the name must be exact). Whether the
      expression actually checks the value (e.g. "... ? claims.email : claims.sub") does not matter. The match is
      by identifier name only, so a comprehension variable named `claims` also matches.

9. userValidationRules[j]
   - expression "" -> "jwt[i].userValidationRules[j].expression: Required value" (the message does not matter).
   - expression equal (exact) to an earlier rule's -> "...[j].expression: Duplicate value: \"<expr>\"", not compiled.
   - Compile in the user environment: variable `user` of type kubernetes.UserInfo {username: string, uid: string,
     groups: list(string), extra: map(string, list(string))}; `claims` is not available. Compile failure ->
     "...[j].expression: Invalid value: \"<expr>\": compilation failed: <issues>".
   - The output type must be exactly bool -> "...[j].expression: Invalid value: \"<expr>\": must evaluate to bool".
   - message is free text.

10. CEL ENVIRONMENT (both environments)
   The Kubernetes base environment at the default compatibility version ("stored expressions" env): the CEL
   standard library plus the strings extension (join, upperAscii, lowerAscii, trim, split, replace, ...), optional
   types (.?, orValue, hasValue, optional.of/none), the Kubernetes libraries (lists, regex, url, quantity, ip/cidr,
   format, semver, ...), macros (has, map, filter, all, exists, exists_one) and cross-type numeric comparisons.
   Claim-mapping and extra expressions accept any output type (checked at runtime). Claim and user validation
   rules need static type bool. Compile errors: cel-go's "ERROR: <input>:L:C: <msg>\n | <src line>\n | ^"
   (cel-cpp differs; compare only the part before the compiler text). There is no cost limit at validation time.

11. NOT IN validation.go (handled by kube-apiserver's loader; listed so they are not mistaken for rules)
   kube-apiserver's loader (kubernetes/kubernetes pkg/kubeapiserver/options/authentication.go,
   loadAuthenticationConfigFromData) rejects an empty file ("empty config data"). It decodes with the apiserver
   install scheme, so apiVersion must be apiserver.config.k8s.io/v1alpha1, v1beta1 or v1 and kind must be
   AuthenticationConfiguration. Decoding is STRICT (serializer.EnableStrict): an unknown field fails before
   validation, e.g. 'strict decoding error: unknown field "jwt[0].issuer.bogus"'. Duplicate fields fail the same way.
   Runtime semantics (iss == url, audience overlap, prefixing, empty username after mapping) are not validation.
"""
