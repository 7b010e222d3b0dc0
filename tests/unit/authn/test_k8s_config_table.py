"""kube-apiserver's AuthenticationConfiguration validation table (k8s_config_cases.py) run through
parse_authentication_config, plus the proxy's own rules for what kube-apiserver's loader and the proxy decide.

Every applicable case is decoded from YAML and from JSON and must give exactly kube-apiserver's errors, in its
order. A CEL compiler message is compared up to the compiler's own text (COMPILER_MARKER): cel-go's words are not
cel-cpp's. Cases that cannot apply to the proxy are not run (a skip would look like a pass); EXCLUDED names them,
with the reason, and test_excluded_cases checks that list against the table.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from kube_oidc_proxy.authn.authconfig import EMAIL_VERIFIED_RULE, AuthenticationConfig, parse_authentication_config
from kube_oidc_proxy.authn.cel import Compiler
from kube_oidc_proxy.authn.fielderror import AuthConfigError
from kube_oidc_proxy.authn.gourl import go_parse_url
from tests.unit.authn.k8s_config_cases import _VALID_CA_PEM, API_VERSION, CASES, COMPILER_MARKER, KIND, ConfigCase

COMPILER = Compiler()

_T_AC = "TestValidateAuthenticationConfiguration"
_DISALLOWED = (
    "kube-apiserver's disallowed issuers (its --service-account-issuer values) have no counterpart in the proxy"
)
_GATE_OFF = (
    "needs the StructuredAuthenticationConfigurationEgressSelector feature gate off; the proxy has no feature gates "
    "and refuses egressSelectorType controlplane for its own reason"
)
EXCLUDED: dict[tuple[str, str], str] = {
    (_T_AC, "valid authentication configuration with disallowed issuer"): _DISALLOWED,
    ("TestValidateIssuerURL", "valid url that is disallowed"): _DISALLOWED,
    (
        _T_AC,
        "valid authentication configuration with valid egress type with "
        "StructuredAuthenticationConfigurationEgressSelector feature disabled",
    ): _GATE_OFF,
    (_T_AC, "valid authentication configuration with valid egress type with GA features only"): _GATE_OFF,
}

_UNVERIFIED = (
    "claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression "
    "or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression"
)
# Where the proxy is stricter: kube-apiserver accepts any static type for a mapping and then refuses every token
# (an optional or a list is never a username); the proxy refuses the file. These cases use such expressions only to
# exercise the email_verified rule, so here our errors are expected instead of kube-apiserver's.
STRICTER: dict[tuple[str, str], tuple[str, ...]] = {
    (_T_AC, "valid authentication configuration that uses unverified optional email"): (
        'jwt[0].claimMappings.username.expression: Invalid value: "claims.?email": '
        "must evaluate to string (it is optional_type<dyn>)",
    ),
    (_T_AC, "valid authentication configuration that uses unverified optional map email value"): (
        'jwt[0].claimMappings.username.expression: Invalid value: "{\\"fancy\\": claims.?email}": '
        "must evaluate to string (it is map<string, optional_type<dyn>>)",
    ),
    (_T_AC, "valid authentication configuration that uses unverified email value in list iteration"): (
        'jwt[0].claimMappings.username.expression: Invalid value: "[\\"a\\"].map(i, i + claims.email)": '
        "must evaluate to string (it is list<string>)",
    ),
    (_T_AC, "valid authentication configuration that uses verified email join via extra optional"): (
        'jwt[0].claimMappings.extra[0].valueExpression: Invalid value: "claims.?email_verified": '
        "must evaluate to a string or a list of strings (it is optional_type<dyn>)",
        "jwt[0].claimMappings.username.expression: Invalid value: "
        "\"['yay', string(claims.email), 'panda'].join(' ')\": " + _UNVERIFIED,
    ),
}


def _applies(case: ConfigCase) -> bool:
    return (case.test, case.name) not in EXCLUDED


RUN = [case for case in CASES if _applies(case)]


def _dump(config: dict[str, Any], form: str) -> str:
    return json.dumps(config, indent=2) if form == "json" else yaml.safe_dump(config, sort_keys=False)


def _errors(text: str | bytes) -> list[str]:
    try:
        parse_authentication_config(text, COMPILER)
    except AuthConfigError as exc:
        return exc.errors
    return []


def _parse(config: dict[str, Any]) -> AuthenticationConfig:
    return parse_authentication_config(_dump(config, "yaml"), COMPILER)


def _as_expected(want: tuple[str, ...], got: list[str]) -> list[str]:
    """``got``, with each CEL compiler message that matches its expected head shown as the expected string."""
    shown = list(got)
    for i, (expected, actual) in enumerate(zip(want, got, strict=False)):
        if COMPILER_MARKER in expected:
            head = expected.split(COMPILER_MARKER)[0]
            if actual.startswith(head + " ") and actual[len(head) + 1 :].strip():
                shown[i] = expected
    return shown


@pytest.mark.parametrize("form", ["yaml", "json"])
@pytest.mark.parametrize("case", RUN, ids=[f"{case.test.removeprefix('TestValidate')}: {case.name}" for case in RUN])
def test_table(case: ConfigCase, form: str) -> None:
    text = _dump(case.config, form)
    want = STRICTER.get((case.test, case.name), case.want_errors)
    try:
        config = parse_authentication_config(text, COMPILER)
    except AuthConfigError as exc:
        assert _as_expected(want, exc.errors) == list(want)
    else:
        assert want == ()
        assert len(config.authenticators) == len(case.config["jwt"])


def test_where_stricter_the_cases_exist_and_kube_apiserver_expected_something_else() -> None:
    table = {(case.test, case.name): case.want_errors for case in RUN}
    for key, ours in STRICTER.items():
        assert table[key] != ours
        assert any("must evaluate to" in error for error in ours)


def test_excluded_cases() -> None:
    excluded = {(case.test, case.name) for case in CASES if not _applies(case)}
    assert excluded == set(EXCLUDED)
    assert all(EXCLUDED.values())
    marked_by_table = {(case.test, case.name) for case in CASES if not case.applies}
    assert marked_by_table == set(EXCLUDED)
    assert (len(CASES), len(RUN)) == (107, 103)


# --- observable equivalents of the Go-only assertions in CASE_NOTES ----------------------------------------------

_CVR = "TestValidateClaimValidationRules"
_EMAIL_ERROR = f'jwt[0].claimMappings.username.expression: Invalid value: "claims.email": {EMAIL_VERIFIED_RULE}'


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("valid claim validation rule with multiple rules and email_verified check", []),
        ("valid claim validation rule with multiple rules and almost email_verified check", [_EMAIL_ERROR]),
        ("valid claim validation rule with multiple rules", [_EMAIL_ERROR]),  # a requiredValue is not CEL
    ],
)
def test_claim_rules_email_verified_state(name: str, want: list[str]) -> None:
    (case,) = [case for case in CASES if (case.test, case.name) == (_CVR, name)]
    config = copy.deepcopy(case.config)
    config["jwt"][0]["claimMappings"] = {"username": {"expression": "claims.email"}}
    assert _errors(_dump(config, "yaml")) == want


def _document(*authenticators: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "jwt": list(authenticators), **top}


def _jwt(url: object = "https://issuer.example", **issuer: Any) -> dict[str, Any]:
    return {
        "issuer": {"url": url, "audiences": ["kubernetes"], **issuer},
        "claimMappings": {"username": {"claim": "sub", "prefix": ""}},
    }


def test_username_with_an_error_is_not_scanned_for_email() -> None:
    jwt = _jwt()
    jwt["claimMappings"]["username"] = {"expression": "claims.email", "prefix": ""}
    assert _errors(_dump(_document(jwt), "yaml")) == [
        'jwt[0].claimMappings.username.prefix: Invalid value: "": may not be specified when expression is set'
    ]


@pytest.mark.parametrize("expression", [".claims.email", "(claims).email", "claims.email.lowerAscii()"])
def test_email_found_as_kube_apiserver_finds_it(expression: str) -> None:
    jwt = _jwt()
    jwt["claimMappings"]["username"] = {"expression": expression}
    want = f"jwt[0].claimMappings.username.expression: Invalid value: {json.dumps(expression)}: {EMAIL_VERIFIED_RULE}"
    assert _errors(_dump(_document(jwt), "yaml")) == [want]


def test_email_verified_in_groups_or_user_rules_does_not_count() -> None:
    jwt = _jwt()
    jwt["claimMappings"] = {
        "username": {"expression": "claims.email"},
        "groups": {"expression": "string(claims.email_verified)"},
        "uid": {"expression": "string(claims.email_verified)"},
    }
    jwt["userValidationRules"] = [{"expression": "user.username != string(user.extra)"}]
    assert _errors(_dump(_document(jwt), "yaml")) == [_EMAIL_ERROR]


# --- the proxy's own rules ------------------------------------------------------------------------------------------


def test_anonymous_enabled_is_refused() -> None:
    refused = (
        "anonymous.enabled: Invalid value: true: "
        "the proxy never forwards a request without a token: anonymous must be disabled"
    )
    assert _errors(_dump(_document(_jwt(), anonymous={"enabled": True}), "yaml")) == [refused]
    conditions = {"enabled": True, "conditions": [{"path": "/livez"}]}
    assert _errors(_dump(_document(_jwt(), anonymous=conditions), "yaml")) == [refused]


def test_anonymous_disabled_is_accepted_and_conditions_need_it_enabled() -> None:
    assert _parse(_document(_jwt(), anonymous={"enabled": False})).authenticators
    assert _parse(_document(_jwt(), anonymous=None)).authenticators
    conditions = {"enabled": False, "conditions": [{"path": "/livez"}, {"path": "/a&b"}]}
    assert _errors(_dump(_document(_jwt(), anonymous=conditions), "yaml")) == [
        'anonymous.conditions: Invalid value: [{"Path":"/livez"},{"Path":"/a\\u0026b"}]: '
        "enabled should be set to true when conditions are defined"
    ]


def test_egress_selector() -> None:
    assert _errors(_dump(_document(_jwt(egressSelectorType="controlplane")), "yaml")) == [
        'jwt[0].issuer.egressSelectorType: Invalid value: "controlplane": '
        "the proxy cannot reach the issuer through the control plane's network: use cluster or leave it empty"
    ]
    (spec,) = _parse(_document(_jwt(egressSelectorType="cluster"))).authenticators
    assert spec.issuer_url == "https://issuer.example"
    assert _parse(_document(_jwt(egressSelectorType=""))).authenticators


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha1"])
def test_api_versions_accepted(version: str) -> None:
    (spec,) = _parse({**_document(_jwt()), "apiVersion": f"apiserver.config.k8s.io/{version}"}).authenticators
    assert spec.audiences == ("kubernetes",)


_VERSIONS = "apiserver.config.k8s.io/v1, apiserver.config.k8s.io/v1beta1, apiserver.config.k8s.io/v1alpha1"


@pytest.mark.parametrize(
    ("api_version", "shown"),
    [
        ("apiserver.config.k8s.io/v2", '"apiserver.config.k8s.io/v2"'),
        ("apiserver.k8s.io/v1", '"apiserver.k8s.io/v1"'),
        ("v1", '"v1"'),
        (None, '""'),
        (1, "1"),
    ],
)
def test_other_api_versions_refused(api_version: object, shown: str) -> None:
    config = {**_document(_jwt()), "apiVersion": api_version}
    assert _errors(_dump(config, "yaml")) == [f"apiVersion: Invalid value: {shown}: must be one of {_VERSIONS}"]


@pytest.mark.parametrize(
    ("kind", "shown"), [("AuthorizationConfiguration", '"AuthorizationConfiguration"'), (None, '""')]
)
def test_wrong_kind(kind: object, shown: str) -> None:
    config = {**_document(_jwt()), "kind": kind}
    assert _errors(_dump(config, "yaml")) == [f"kind: Invalid value: {shown}: must be AuthenticationConfiguration"]


def test_wrong_api_version_and_kind_together() -> None:
    text = "apiVersion: v1\nkind: Secret\n"
    assert _errors(text) == [
        f'apiVersion: Invalid value: "v1": must be one of {_VERSIONS}',
        'kind: Invalid value: "Secret": must be AuthenticationConfiguration',
    ]


def test_unknown_fields_all_in_one_strict_decoding_error() -> None:
    # kube-apiserver's strict decoding lists every unknown field, then stops: nothing is validated
    config = _document(_jwt(url="http://not-https", bogus=1), zeta=True, alpha=[1])
    config["jwt"][0]["claimMappings"]["username"]["Claim"] = "case matters"
    # YAML is converted to JSON with sorted keys before decoding; JSON is decoded in document order
    assert _errors(_dump(config, "yaml")) == [
        'strict decoding error: unknown field "alpha", unknown field "jwt[0].claimMappings.username.Claim", '
        'unknown field "jwt[0].issuer.bogus", unknown field "zeta"'
    ]
    assert _errors(_dump(config, "json")) == [
        'strict decoding error: unknown field "jwt[0].issuer.bogus", '
        'unknown field "jwt[0].claimMappings.username.Claim", unknown field "zeta", unknown field "alpha"'
    ]


def test_duplicate_fields() -> None:
    header = f"apiVersion: {API_VERSION}\nkind: {KIND}\n"
    assert _errors(header + f"kind: {KIND}\njwt: []\njwt: []\n") == [
        'strict decoding error: yaml: unmarshal errors:\n  line 3: key "kind" already set in map\n'
        '  line 5: key "jwt" already set in map'
    ]
    text = json.dumps(_document(_jwt())).replace('"kind"', f'"kind": "{KIND}", "bogus": 1, "kind"')
    # JSON: in document order ("kind", "bogus", then "kind" again)
    assert _errors(text) == ['strict decoding error: unknown field "bogus", duplicate field "kind"']


def test_yaml_syntax_error() -> None:
    assert _errors(f"apiVersion: {API_VERSION}\nkind: {KIND}\njwt: [\n") == [
        "yaml: line 4: expected the node content, but found '<stream end>'"
    ]
    assert _errors(f"apiVersion: {API_VERSION}\nkind: {KIND}\njwt:\n  - a: b\n c: d\n") == [
        "yaml: line 5: expected <block end>, but found '<block mapping start>'"
    ]


def test_json_syntax_error() -> None:
    # a file that starts with "{" is JSON to kube-apiserver, so a YAML flow mapping is refused
    assert _errors("{apiVersion: v1}") == [
        "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ]


@pytest.mark.parametrize(
    ("jwt", "found", "go_type"),
    [
        ({}, "object", "[]v1.JWTAuthenticator"),
        ("https://issuer.example", "string", "[]v1.JWTAuthenticator"),
        ([1], "number", "v1.JWTAuthenticator"),
    ],
)
def test_jwt_that_is_not_a_list(jwt: object, found: str, go_type: str) -> None:
    want = f"json: cannot unmarshal {found} into Go struct field AuthenticationConfiguration.jwt of type {go_type}"
    config = {**_document(), "jwt": jwt, "bogus": 1}  # a type error stops decoding: no strict decoding error
    assert _errors(_dump(config, "yaml")) == [want]
    assert _errors(_dump(config, "json")) == [want]


def test_first_type_error_only_with_the_versions_type_names() -> None:
    config = _document(_jwt(url=5, audienceMatchPolicy=["MatchAny"]), anonymous={"enabled": "yes"})
    config["apiVersion"] = "apiserver.config.k8s.io/v1beta1"
    # YAML keys are visited sorted: anonymous first; JSON in document order: the issuer's url first
    assert _errors(_dump(config, "yaml")) == [
        "json: cannot unmarshal string into Go struct field AnonymousAuthConfig.anonymous.enabled of type bool"
    ]
    assert _errors(_dump(config, "json")) == [
        "json: cannot unmarshal number into Go struct field Issuer.jwt.issuer.url of type string"
    ]
    del config["anonymous"]
    config["jwt"][0]["issuer"]["url"] = "https://issuer.example"
    assert _errors(_dump(config, "json")) == [
        "json: cannot unmarshal array into Go struct field Issuer.jwt.issuer.audienceMatchPolicy "
        "of type v1beta1.AudienceMatchPolicyType"
    ]


def test_yaml_scalars_as_kube_apiserver_reads_them() -> None:
    header = f"apiVersion: {API_VERSION}\nkind: {KIND}\njwt:\n- issuer: {{url: https://i, audiences: [a]}}\n"
    mappings = "  claimMappings: {username: {claim: sub, prefix: ''}}\n"
    # yaml.v2: y and n are booleans
    assert _errors(header + mappings + "  claimValidationRules: [{claim: y}]\n") == [
        "json: cannot unmarshal bool into Go struct field ClaimValidationRule.jwt.claimValidationRules.claim "
        "of type string"
    ]
    # a date and a time-like value stay strings; 0x10 is a number
    rules = "  claimValidationRules: [{claim: a, requiredValue: 2001-12-14}, {claim: b, requiredValue: 10:30}]\n"
    (spec,) = parse_authentication_config(header + mappings + rules, COMPILER).authenticators
    assert spec.required_claims == (("a", "2001-12-14"), ("b", "10:30"))
    assert _errors(header + mappings + "  claimValidationRules: [{claim: a, requiredValue: 0x10}]\n") == [
        "json: cannot unmarshal number into Go struct field ClaimValidationRule.jwt.claimValidationRules.requiredValue "
        "of type string"
    ]


@pytest.mark.parametrize("text", ["", b""])
def test_empty_file(text: str | bytes) -> None:
    assert _errors(text) == ["empty config data"]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("# nothing but a comment\n", None),
        ("- a\n", "an AuthenticationConfiguration must be an object, not a list"),
        ("hello\n", "an AuthenticationConfiguration must be an object, not a string"),
        (
            b"\xff\xfe",
            "the file is not UTF-8 text: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
        ),
    ],
)
def test_not_a_configuration(text: str | bytes, want: str | None) -> None:
    if want is None:  # an empty document: apiVersion and kind are missing
        assert _errors(text) == [
            f'apiVersion: Invalid value: "": must be one of {_VERSIONS}',
            'kind: Invalid value: "": must be AuthenticationConfiguration',
        ]
    else:
        assert _errors(text) == [want]


def test_too_many_authenticators() -> None:
    jwts = [_jwt(url=f"https://issuer-{i}.example") for i in range(65)]
    jwts[0]["issuer"]["url"] = "http://not-validated"
    assert _errors(_dump(_document(*jwts), "yaml")) == ["jwt: Too many: 65: must have at most 64 items"]
    assert len(_parse(_document(*jwts[1:])).authenticators) == 64


def test_zero_authenticators() -> None:
    assert _parse(_document()).authenticators == ()
    assert _parse({"apiVersion": API_VERSION, "kind": KIND}).authenticators == ()


# --- rendering of values, as field.Error does --------------------------------------------------------------------


def test_values_are_quoted_as_go_does() -> None:
    jwt = _jwt(audienceMatchPolicy="<exact>")
    jwt["claimValidationRules"] = [{"claim": "a\tb\u00a0é"}, {"claim": "a\tb\u00a0é"}]
    assert _errors(_dump(_document(jwt), "json")) == [
        # a named string type is JSON-encoded (HTML characters escaped), a plain string is %q
        'jwt[0].issuer.audienceMatchPolicy: Invalid value: "\\u003cexact\\u003e": '
        "audienceMatchPolicy must be empty or MatchAny for single audience",
        'jwt[0].claimValidationRules[1].claim: Duplicate value: "a\\tb\\u00a0é"',
    ]


# --- Go's url.Parse, through validateURL ---------------------------------------------------------------------------

_URL_CASES = [
    ("https://issuer.example/path", []),
    ("HTTPS://issuer.example", []),  # Go lowercases the scheme
    ("https://issuer.example?", []),  # an empty query is no query
    ("https://issuer.example#", []),  # nor an empty fragment
    ("https:opaque", []),  # Go does not require a host
    ("https://[::1]:8443/x", []),
    ("https://[fe80::1%25en0]", []),
    ("https://@issuer.example", ["URL must not contain a username or password"]),
    ("https://issuer.example??", ["URL must not contain a query"]),
    ("invalid-url", ["URL scheme must be https"]),
    (
        "http://u@h?q#f",
        [
            "URL scheme must be https",
            "URL must not contain a username or password",
            "URL must not contain a query",
            "URL must not contain a fragment",
        ],
    ),
    (":foo", ['parse ":foo": missing protocol scheme']),
    ("a:b/c:d", ["URL scheme must be https"]),  # a scheme, and an opaque rest
    ("1a:b", ['parse "1a:b": first path segment in URL cannot contain colon']),
    ("https://issuer.example\n", ['parse "https://issuer.example\\n": net/url: invalid control character in URL']),
    ("https://issuer.example:443:443", ['parse "https://issuer.example:443:443": invalid port ":443:443" after host']),
    ("https://issuer.example:", []),
    ("https://issuer example", ['parse "https://issuer example": invalid character " " in host name']),
    ("https://issuer.example/%zz", ['parse "https://issuer.example/%zz": invalid URL escape "%zz"']),
    ("https://issuer.example/%4", ['parse "https://issuer.example/%4": invalid URL escape "%4"']),
    ("https://issuer.example#%zz", ['parse "https://issuer.example#%zz": invalid URL escape "%zz"']),
    ("https://issuer%41.example", ['parse "https://issuer%41.example": invalid URL escape "%41"']),
    ("https://[::1", ["parse \"https://[::1\": missing ']' in host"]),
    ("https://x[::1]", ['parse "https://x[::1]": invalid IP-literal']),
    ("https://[127.0.0.1]", ['parse "https://[127.0.0.1]": invalid IP-literal']),
    ("https://[::1]x", ['parse "https://[::1]x": invalid port "x" after host']),
    ("https://us er@h", ['parse "https://us er@h": net/url: invalid userinfo']),
]


@pytest.mark.parametrize(("url", "details"), _URL_CASES, ids=[url for url, _ in _URL_CASES])
def test_issuer_url_checks(url: str, details: list[str]) -> None:
    want = [f"jwt[0].issuer.url: Invalid value: {json.dumps(url)}: {detail}" for detail in details]
    assert _errors(_dump(_document(_jwt(url=url)), "json")) == want


def test_go_url_parts() -> None:
    url = go_parse_url("HTTPS://user:pass@issuer.example:8443/p?q=1#frag")
    assert (url.scheme, url.has_user, url.raw_query, url.fragment) == ("https", True, "q=1", "frag")
    assert go_parse_url("https://issuer.example/").has_user is False


# --- client-go's CA parsing ------------------------------------------------------------------------------------------

_BAD_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBEfBEfBEfBEfBEfBEfBEfBEfBEfBEf\n-----END PRIVATE KEY-----\n"
_WITH_HEADERS = _VALID_CA_PEM.replace("CERTIFICATE-----\n", "CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n", 1)


@pytest.mark.parametrize(
    ("pem", "detail"),
    [
        (_BAD_CERTIFICATE + _VALID_CA_PEM, "x509: malformed certificate"),
        (_VALID_CA_PEM + _BAD_CERTIFICATE, "x509: malformed certificate"),
        (_WITH_HEADERS, "data does not contain any valid RSA or ECDSA certificates"),
        (_KEY, "data does not contain any valid RSA or ECDSA certificates"),
    ],
)
def test_certificate_authority_refused(pem: str, detail: str) -> None:
    want = f'jwt[0].issuer.certificateAuthority: Invalid value: "<omitted>": {detail}'
    assert _errors(_dump(_document(_jwt(certificateAuthority=pem)), "yaml")) == [want]


def test_certificate_authority_keeps_only_certificates() -> None:
    pem = "some text first\n" + _KEY + _WITH_HEADERS + _VALID_CA_PEM + "trailing text\n"
    (spec,) = _parse(_document(_jwt(certificateAuthority=pem))).authenticators
    assert spec.ca_pem is not None
    assert spec.ca_pem.decode().count("BEGIN CERTIFICATE") == 1
    assert b"PRIVATE KEY" not in spec.ca_pem
    assert b"Proc-Type" not in spec.ca_pem


@pytest.mark.parametrize(
    ("mapping", "expression", "error"),
    [
        ("username", "claims.sub == 'x'", "must evaluate to string (it is bool)"),
        ("username", "[claims.sub]", "must evaluate to string (it is list<dyn>)"),
        ("uid", "1", "must evaluate to string (it is int)"),
        ("groups", "{'a': claims.sub}", "must evaluate to a string or a list of strings (it is map<string, dyn>)"),
        ("groups", "claims.size()", "must evaluate to a string or a list of strings (it is int)"),
    ],
)
def test_a_mapping_whose_static_type_can_never_fit_is_refused_at_load(
    mapping: str, expression: str, error: str
) -> None:
    jwt = _jwt()
    jwt["claimMappings"][mapping] = {"expression": expression}
    assert _errors(_dump(_document(jwt), "yaml")) == [
        f"jwt[0].claimMappings.{mapping}.expression: Invalid value: {json.dumps(expression)}: {error}"
    ]


@pytest.mark.parametrize(
    ("mapping", "expression"),
    [
        ("username", "claims.sub"),  # dyn: checked per token, as kube-apiserver does
        ("username", "'oidc:' + claims.sub"),
        ("groups", "claims.groups"),
        ("groups", "claims.groups.map(g, 'x:' + g)"),
        ("groups", "['a', 'b']"),
        ("groups", "null"),
        ("uid", "string(claims.n)"),
    ],
)
def test_mappings_that_may_fit_are_accepted(mapping: str, expression: str) -> None:
    jwt = _jwt()
    jwt["claimMappings"][mapping] = {"expression": expression}
    assert _errors(_dump(_document(jwt), "yaml")) == []


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("user.name == 'x'", "compilation failed: undefined field 'name'"),
        ("user.?tenant.orValue('') == ''", "compilation failed: undefined field 'tenant'"),
        ("user.username == 'x' && has(user.group)", "compilation failed: undefined field 'group'"),
    ],
)
def test_a_user_rule_naming_a_field_the_user_does_not_have_is_refused(expression: str, error: str) -> None:
    jwt = _jwt()
    jwt["userValidationRules"] = [{"expression": expression}]
    assert _errors(_dump(_document(jwt), "yaml")) == [
        f"jwt[0].userValidationRules[0].expression: Invalid value: {json.dumps(expression)}: {error}"
    ]


def test_a_user_rule_may_use_every_field_of_the_user() -> None:
    jwt = _jwt()
    expression = "user.username != '' && user.uid == '' && size(user.groups) >= 0 && !('a/b' in user.extra)"
    jwt["userValidationRules"] = [{"expression": expression}]
    assert _errors(_dump(_document(jwt), "yaml")) == []
