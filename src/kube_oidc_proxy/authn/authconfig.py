"""kube-apiserver's AuthenticationConfiguration file (``--authentication-config``) -> JWT authenticator specs.

The file is read as kube-apiserver reads it, and refused in its words (``configfile.py`` loads and decodes,
``gourl.py`` and ``capool.py`` check URLs and CA bundles as Go does, ``fielderror.py`` words the errors;
this module validates and builds the specs):

* Loading (kubernetes pkg/kubeapiserver/options/authentication.go): an empty file is "empty config data".
  JSON (the text starts with ``{``) is read as JSON, anything else as YAML with go.yaml.in/yaml/v2's
  scalars (``y``/``n`` are booleans, a date stays a string, ``1:30`` is a string). apiVersion must be
  apiserver.config.k8s.io/v1, v1beta1 or v1alpha1 (the same fields) and kind AuthenticationConfiguration.
  The proxy words these two errors and those for a file that is not an object (kube-apiserver's name the
  source line of its scheme); a YAML syntax error is PyYAML's description after Go's ``yaml: line N:``.
* Decoding is strict, as k8s.io/apimachinery's serializer with sigs.k8s.io/json: a value of the wrong JSON
  type stops decoding with Go's ``json: cannot unmarshal ...`` (the first one only); otherwise unknown and
  duplicate fields are reported together in one ``strict decoding error: unknown field "jwt[0].x", ...``.
  YAML keys are visited in sorted order, as kube-apiserver's YAML-to-JSON conversion sorts them.
* Validation follows k8s.io/apiserver pkg/apis/apiserver/validation ValidateAuthenticationConfiguration:
  every problem, in kube-apiserver's order, rendered as k8s.io/apimachinery's ``field.Error``
  (``jwt[0].claimMappings.username.prefix: Required value: ...``), identical messages once. URLs are
  checked with a port of Go's ``net/url.Parse`` and CA bundles as client-go's ``cert.NewPoolFromBytes``.
  CEL expressions are compiled and type-checked here, once; ``claims.py`` evaluates them per token. CEL
  compiler messages are cel-cpp's (the text after ``compilation failed:``), not cel-go's.

What a proxy does differently: all nine asymmetric signing algorithms are accepted (as kube-apiserver
does); ``anonymous`` may only be absent or disabled (a request without a token is always refused here);
``egressSelectorType`` may be empty or ``cluster`` (the proxy runs in the cluster, so its own connections
are the cluster's egress) but not ``controlplane``, a network the proxy cannot reach; there are no
disallowed issuers (kube-apiserver's --service-account-issuer values); a CA bundle must also load in the
proxy's TLS library.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any, Final

from kube_oidc_proxy.authn.capool import ca_bundle, parse_ca
from kube_oidc_proxy.authn.cel import CLAIMS, USER, CelCompileError, Compiler, Program
from kube_oidc_proxy.authn.celscan import selected_fields, selects_claim
from kube_oidc_proxy.authn.configfile import decode
from kube_oidc_proxy.authn.fielderror import AuthConfigError, GoJSON, duplicate, invalid, required, too_many
from kube_oidc_proxy.authn.gourl import GoURLError, go_parse_url
from kube_oidc_proxy.authn.model import (
    SUPPORTED_SIGNING_ALGS,
    ClaimMapping,
    ExtraMapping,
    JWTAuthenticatorSpec,
    ValidationRule,
)
from kube_oidc_proxy.identity import reserved_extra_key

MAX_AUTHENTICATORS: Final = 64
MATCH_ANY: Final = "MatchAny"
EMAIL_VERIFIED_RULE: Final = (
    "claims.email_verified must be used in claimMappings.username.expression or "
    "claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in "
    "claimMappings.username.expression"
)
_DNS1123_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_HTTP_PATH_FORMAT: Final = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH: Final = re.compile(_HTTP_PATH_FORMAT)


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    authenticators: tuple[JWTAuthenticatorSpec, ...]


# --- validation, as kube-apiserver's ----------------------------------------------------------------------


def _validate_url(url: str, path: str) -> list[str]:
    try:
        parts = go_parse_url(url)
    except GoURLError as exc:
        return [invalid(path, url, str(exc))]
    errors = []
    if parts.scheme != "https":
        errors.append(invalid(path, url, "URL scheme must be https"))
    if parts.has_user:
        errors.append(invalid(path, url, "URL must not contain a username or password"))
    if parts.raw_query:
        errors.append(invalid(path, url, "URL must not contain a query"))
    if parts.fragment:
        errors.append(invalid(path, url, "URL must not contain a fragment"))
    return errors


def _validate_issuer(issuer: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    url, discovery = issuer["url"], issuer["discoveryURL"] or ""
    if not url:
        errors.append(required(f"{path}.url"))
    else:
        errors += _validate_url(url, f"{path}.url")
    if discovery:
        if url and url.rstrip("/") == discovery.rstrip("/"):
            errors.append(invalid(f"{path}.discoveryURL", discovery, "discoveryURL must be different from URL"))
        errors += _validate_url(discovery, f"{path}.discoveryURL")
    errors += _validate_audiences(issuer["audiences"], issuer["audienceMatchPolicy"], path)
    if issuer["certificateAuthority"]:
        certificates, problem = parse_ca(issuer["certificateAuthority"])
        if not problem:
            problem = _proxy_tls_problem(certificates)
        if problem:
            errors.append(invalid(f"{path}.certificateAuthority", "<omitted>", problem))
    egress = issuer["egressSelectorType"]
    if egress and egress not in ("controlplane", "cluster"):
        errors.append(
            invalid(
                f"{path}.egressSelectorType", GoJSON(egress), "egress selector must be either controlplane or cluster"
            )
        )
    elif egress == "controlplane":
        errors.append(
            invalid(
                f"{path}.egressSelectorType",
                GoJSON(egress),
                "the proxy cannot reach the issuer through the control plane's network: use cluster or leave it empty",
            )
        )
    return errors


def _proxy_tls_problem(certificates: list[bytes]) -> str:
    """Beyond kube-apiserver: the bundle must also load where the proxy uses it (ssl, for the issuer)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=ca_bundle(certificates).decode("ascii"))
    except (ssl.SSLError, ValueError) as exc:
        return f"the proxy's TLS library cannot use it: {exc}"
    return ""


def _validate_audiences(audiences: list[str], policy: str, path: str) -> list[str]:
    if not audiences:
        return [required(f"{path}.audiences", f"at least one {path}.audiences is required")]
    errors: list[str] = []
    seen: set[str] = set()
    for i, audience in enumerate(audiences):
        if not audience:
            errors.append(required(f"{path}.audiences[{i}]"))
        if audience in seen:
            errors.append(duplicate(f"{path}.audiences[{i}]", audience))
        seen.add(audience)
    if len(audiences) > 1 and policy != MATCH_ANY:
        errors.append(
            invalid(
                f"{path}.audienceMatchPolicy",
                GoJSON(policy),
                "audienceMatchPolicy must be MatchAny for multiple audiences",
            )
        )
    if len(audiences) == 1 and policy and policy != MATCH_ANY:
        errors.append(
            invalid(
                f"{path}.audienceMatchPolicy",
                GoJSON(policy),
                "audienceMatchPolicy must be empty or MatchAny for single audience",
            )
        )
    return errors


USER_FIELDS: Final = frozenset({"username", "uid", "groups", "extra"})  # kube-apiserver's kubernetes.UserInfo
# Static result types a mapping may have; DYN (most expressions over claims) is checked per token.
_RESULT_TYPES: Final = {
    "string": frozenset({"STRING", "DYN"}),
    "strings": frozenset({"STRING", "DYN", "NULL", "LIST<STRING>", "LIST<DYN>"}),
}


class _Validator:
    """One JWT authenticator: the checks of validateJWTAuthenticator, compiling each expression once."""

    def __init__(self, compiler: Compiler, path: str) -> None:
        self.compiler = compiler
        self.path = path
        self.errors: list[str] = []
        self.uses_email = False
        self.uses_email_verified = False

    def compile(
        self, expression: str, path: str, *, variable: str = CLAIMS, boolean: bool = False, result: str = ""
    ) -> Program | None:
        """``result``: "string" or "strings" for a mapping whose type the checker can already tell is wrong."""
        try:
            program = self.compiler.compile(expression, variable, boolean=boolean)
        except CelCompileError as exc:
            self.errors.append(invalid(path, expression, str(exc)))
            return None
        if result and program.result_type not in _RESULT_TYPES[result]:
            # Stricter than kube-apiserver, which accepts any static type here and refuses every token later.
            detail = (
                "must evaluate to string" if result == "string" else "must evaluate to a string or a list of strings"
            )
            self.errors.append(invalid(path, expression, f"{detail} (it is {program.result_type.lower()})"))
            return None
        return program

    def claim_rules(
        self, rules: list[dict[str, str]]
    ) -> tuple[tuple[tuple[str, str], ...], tuple[ValidationRule, ...]]:
        required_claims: list[tuple[str, str]] = []
        programs: list[ValidationRule] = []
        seen_claims: set[str] = set()
        seen_expressions: set[str] = set()
        for i, rule in enumerate(rules):
            path = f"{self.path}.claimValidationRules[{i}]"
            claim, expression = rule["claim"], rule["expression"]
            if claim and expression:
                self.errors.append(invalid(path, claim, "claim and expression can't both be set"))
            elif not claim and not expression:
                self.errors.append(required(path, "claim or expression is required"))
            elif claim:
                if rule["message"]:
                    self.errors.append(
                        invalid(f"{path}.message", rule["message"], "may not be specified when claim is set")
                    )
                if claim in seen_claims:
                    self.errors.append(duplicate(f"{path}.claim", claim))
                seen_claims.add(claim)
                required_claims.append((claim, rule["requiredValue"]))
            else:
                if rule["requiredValue"]:
                    self.errors.append(
                        invalid(
                            f"{path}.requiredValue",
                            rule["requiredValue"],
                            "may not be specified when expression is set",
                        )
                    )
                if expression in seen_expressions:
                    self.errors.append(duplicate(f"{path}.expression", expression))
                    continue
                seen_expressions.add(expression)
                program = self.compile(expression, f"{path}.expression", boolean=True)
                if program is not None:
                    self.uses_email_verified |= selects_claim(expression, "email_verified")
                    programs.append(ValidationRule(program, rule["message"]))
        return tuple(required_claims), tuple(programs)

    def prefixed(
        self, mapping: dict[str, Any], path: str, *, required_mapping: bool, result: str
    ) -> ClaimMapping | None:
        claim, expression, prefix = mapping["claim"], mapping["expression"], mapping["prefix"]
        if claim and expression:
            self.errors.append(invalid(path, "", "claim and expression can't both be set"))
        elif not claim and not expression:
            if required_mapping:
                self.errors.append(required(path, "claim or expression is required"))
        elif expression:
            if prefix is not None:
                self.errors.append(invalid(f"{path}.prefix", prefix, "may not be specified when expression is set"))
            program = self.compile(expression, f"{path}.expression", result=result)
            return ClaimMapping(expression=program) if program is not None else None
        else:
            if prefix is None:
                self.errors.append(
                    required(
                        f"{path}.prefix",
                        "prefix is required when claim is set. It can be set to an empty string to disable prefixing",
                    )
                )
            return ClaimMapping(claim, prefix or "")
        return None

    def uid(self, mapping: dict[str, str], path: str) -> ClaimMapping | None:
        if mapping["claim"] and mapping["expression"]:
            self.errors.append(invalid(path, "", "claim and expression can't both be set"))
        elif mapping["expression"]:
            program = self.compile(mapping["expression"], f"{path}.expression", result="string")
            return ClaimMapping(expression=program) if program is not None else None
        elif mapping["claim"]:
            return ClaimMapping(mapping["claim"])
        return None

    def extra_mappings(self, mappings: list[dict[str, str]]) -> tuple[ExtraMapping, ...]:
        result: list[ExtraMapping] = []
        seen: set[str] = set()
        for i, mapping in enumerate(mappings):
            path = f"{self.path}.claimMappings.extra[{i}]"
            key = mapping["key"]
            self.errors += _domain_prefixed_path(f"{path}.key", key)
            if key != key.lower():
                self.errors.append(invalid(f"{path}.key", key, "must be lowercase"))
            if _is_kubernetes_domain(key):
                self.errors.append(
                    invalid(
                        f"{path}.key", key, "k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"
                    )
                )
            if reserved_extra_key(key):
                self.errors.append(
                    invalid(f"{path}.key", key, "originaluser.* keys are reserved for the proxy's record of who asked")
                )
            if key in seen:
                self.errors.append(duplicate(f"{path}.key", key))
                continue
            seen.add(key)
            if not mapping["valueExpression"]:
                self.errors.append(required(f"{path}.valueExpression"))
                continue
            program = self.compile(mapping["valueExpression"], f"{path}.valueExpression", result="strings")
            if program is not None:
                self.uses_email_verified |= selects_claim(mapping["valueExpression"], "email_verified")
                result.append(ExtraMapping(key, program))
        return tuple(result)

    def user_rules(self, rules: list[dict[str, str]]) -> tuple[ValidationRule, ...]:
        result: list[ValidationRule] = []
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            path = f"{self.path}.userValidationRules[{i}].expression"
            expression = rule["expression"]
            if not expression:
                self.errors.append(required(path))
                continue
            if expression in seen:
                self.errors.append(duplicate(path, expression))
                continue
            seen.add(expression)
            unknown = sorted(selected_fields(expression, USER) - USER_FIELDS)
            if unknown:  # user is a map to cel-cpp here; kube-apiserver's checker knows its fields
                self.errors.append(invalid(path, expression, f"compilation failed: undefined field '{unknown[0]}'"))
                continue
            program = self.compile(expression, path, variable=USER, boolean=True)
            if program is not None:
                result.append(ValidationRule(program, rule["message"]))
        return tuple(result)


def _domain_prefixed_path(path: str, key: str) -> list[str]:
    """k8s.io/apimachinery IsDomainPrefixedPath."""
    if not key:
        return [required(path)]
    host, sep, rest = key.partition("/")
    if not sep or not host or not rest:
        return [invalid(path, key, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errors = []
    if len(host) > 253:
        errors.append(invalid(path, host, "must be no more than 253 characters"))
    if not _DNS1123_SUBDOMAIN.fullmatch(host):
        errors.append(invalid(path, host, _DNS1123_MESSAGE))
    if not _HTTP_PATH.fullmatch(rest):
        errors.append(invalid(path, rest, f"Invalid path (regex used for validation is '{_HTTP_PATH_FORMAT}')"))
    return errors


def _is_kubernetes_domain(key: str) -> bool:
    domain, sep, _ = key.partition("/")
    if not sep:
        return False
    return any(domain == d or domain.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


def _authenticator(compiler: Compiler, jwt: dict[str, Any], path: str) -> tuple[JWTAuthenticatorSpec | None, list[str]]:
    """validateJWTAuthenticator: the spec, or the authenticator's errors in kube-apiserver's order."""
    issuer = jwt["issuer"]
    errors = _validate_issuer(issuer, f"{path}.issuer")
    check = _Validator(compiler, path)
    required_claims, claim_rules = check.claim_rules(jwt["claimValidationRules"])
    mappings = jwt["claimMappings"]
    before = len(check.errors)
    username = check.prefixed(
        mappings["username"], f"{path}.claimMappings.username", required_mapping=True, result="string"
    )
    if len(check.errors) == before and username is not None and username.expression is not None:
        # only a username expression without any error is scanned (kube-apiserver: err == nil)
        expression = mappings["username"]["expression"]
        check.uses_email = selects_claim(expression, "email")
        check.uses_email_verified |= selects_claim(expression, "email_verified")
    groups = check.prefixed(
        mappings["groups"], f"{path}.claimMappings.groups", required_mapping=False, result="strings"
    )
    uid = check.uid(mappings["uid"], f"{path}.claimMappings.uid")
    extra = check.extra_mappings(mappings["extra"])
    if check.uses_email and not check.uses_email_verified:
        check.errors.append(
            invalid(
                f"{path}.claimMappings.username.expression", mappings["username"]["expression"], EMAIL_VERIFIED_RULE
            )
        )
    user_rules = check.user_rules(jwt["userValidationRules"])
    errors += check.errors
    if errors or username is None:
        return None, errors
    certificates = parse_ca(issuer["certificateAuthority"])[0] if issuer["certificateAuthority"] else []
    spec = JWTAuthenticatorSpec(
        issuer_url=issuer["url"],
        audiences=tuple(issuer["audiences"]),
        username=username,
        groups=groups,
        uid=uid,
        extra=extra,
        required_claims=required_claims,
        claim_rules=claim_rules,
        user_rules=user_rules,
        signing_algs=SUPPORTED_SIGNING_ALGS,
        discovery_url=issuer["discoveryURL"] or None,
        ca_pem=ca_bundle(certificates) if certificates else None,
    )
    return spec, []


def parse_authentication_config(text: str | bytes, compiler: Compiler | None = None) -> AuthenticationConfig:
    """The file's JWT authenticators, or ``AuthConfigError`` listing every problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthConfigError([f"the file is not UTF-8 text: {exc}"]) from None
    config = decode(text)
    jwts: list[dict[str, Any]] = config["jwt"]
    if len(jwts) > MAX_AUTHENTICATORS:
        raise AuthConfigError([too_many("jwt", len(jwts), MAX_AUTHENTICATORS)])
    compiler = compiler or Compiler()
    errors: list[str] = []
    specs: list[JWTAuthenticatorSpec] = []
    seen_issuers: set[str] = set()
    seen_discovery: set[str] = set()
    for i, jwt in enumerate(jwts):
        spec, problems = _authenticator(compiler, jwt, f"jwt[{i}]")
        errors += problems
        url, discovery = jwt["issuer"]["url"], jwt["issuer"]["discoveryURL"]
        if url in seen_issuers:
            errors.append(duplicate(f"jwt[{i}].issuer.url", url))
        seen_issuers.add(url)
        if discovery:
            if discovery in seen_discovery:
                errors.append(duplicate(f"jwt[{i}].issuer.discoveryURL", discovery))
            seen_discovery.add(discovery)
        if spec is not None:
            specs.append(spec)
    anonymous = config["anonymous"]
    if anonymous["conditions"] and not anonymous["enabled"]:
        conditions = GoJSON([{"Path": condition["path"]} for condition in anonymous["conditions"]])
        errors.append(
            invalid("anonymous.conditions", conditions, "enabled should be set to true when conditions are defined")
        )
    if anonymous["enabled"]:
        errors.append(
            invalid(
                "anonymous.enabled",
                True,
                "the proxy never forwards a request without a token: anonymous must be disabled",
            )
        )
    if errors:
        raise AuthConfigError(list(dict.fromkeys(errors)))  # field.ErrorList.ToAggregate: each message once
    return AuthenticationConfig(tuple(specs))
