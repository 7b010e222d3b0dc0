"""kube-apiserver's AuthenticationConfiguration file (``--authentication-config``) -> JWT authenticator specs.

Decoding is strict, as kube-apiserver's (an unknown field or a wrong type is an error), and validation
follows k8s.io/apiserver pkg/apis/apiserver/validation: every problem is reported with its field path in
kube-apiserver's words (``jwt[0].claimMappings.username.prefix: Required value: ...``), all at once. CEL
expressions are compiled and type-checked here, once; ``claims.py`` evaluates them per token.

What a proxy does differently: with the file, all nine asymmetric signing algorithms are accepted (as
kube-apiserver does); ``anonymous`` may only be absent or disabled (a request without a token is always
refused here); ``egressSelectorType`` may be empty or ``cluster`` (the proxy runs in the cluster, so its
own connections are the cluster's egress) but not ``controlplane``, a network the proxy cannot reach.
"""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from kube_oidc_proxy.authn.cel import CLAIMS, USER, CelCompileError, Compiler, Program
from kube_oidc_proxy.authn.celscan import selects_claim
from kube_oidc_proxy.authn.model import (
    SUPPORTED_SIGNING_ALGS,
    ClaimMapping,
    ExtraMapping,
    JWTAuthenticatorSpec,
    ValidationRule,
)

API_VERSIONS: Final = (
    "apiserver.config.k8s.io/v1",
    "apiserver.config.k8s.io/v1beta1",
    "apiserver.config.k8s.io/v1alpha1",
)
KIND: Final = "AuthenticationConfiguration"
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


class AuthConfigError(ValueError):
    """The file is not a valid AuthenticationConfiguration; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    authenticators: tuple[JWTAuthenticatorSpec, ...]


# --- field errors, rendered as k8s.io/apimachinery field.Error.Error() -----------------------------------


def _quote(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def invalid(path: str, value: object, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def duplicate(path: str, value: object) -> str:
    return f"{path}: Duplicate value: {_quote(value)}"


# --- strict decoding -------------------------------------------------------------------------------------

# A shape: str (a string), bool, "str?" (a string that may be null: Go's *string), [shape] (a list),
# or a dict of field -> shape (an object).
Shape = Any
_CLAIM_OR_EXPRESSION: Final = {"claim": str, "expression": str}
_PREFIXED: Final = {"claim": str, "prefix": "str?", "expression": str}
_JWT: Final = {
    "issuer": {
        "url": str,
        "discoveryURL": str,
        "certificateAuthority": str,
        "audiences": [str],
        "audienceMatchPolicy": str,
        "egressSelectorType": str,
    },
    "claimValidationRules": [{"claim": str, "requiredValue": str, "expression": str, "message": str}],
    "claimMappings": {
        "username": _PREFIXED,
        "groups": _PREFIXED,
        "uid": _CLAIM_OR_EXPRESSION,
        "extra": [{"key": str, "valueExpression": str}],
    },
    "userValidationRules": [{"expression": str, "message": str}],
}
_DOCUMENT: Final = {
    "apiVersion": str,
    "kind": str,
    "jwt": [_JWT],
    "anonymous": {"enabled": bool, "conditions": [{"path": str}]},
}


def _decode(value: Any, shape: Shape, path: str, errors: list[str]) -> Any:
    """``value`` checked against ``shape``; missing fields get Go's zero values (None for ``str?``)."""
    if shape == "str?":
        if value is None or isinstance(value, str):
            return value
        errors.append(invalid(path, value, "must be a string"))
        return None
    if shape is str or shape is bool:
        zero = "" if shape is str else False
        if value is None:
            return zero
        if type(value) is not shape:
            errors.append(invalid(path, value, f"must be a {'string' if shape is str else 'boolean'}"))
            return zero
        return value
    if isinstance(shape, list):
        if value is None:
            return []
        if not isinstance(value, list):
            errors.append(invalid(path, value, "must be a list"))
            return []
        return [_decode(item, shape[0], f"{path}[{i}]", errors) for i, item in enumerate(value)]
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.append(invalid(path, value, "must be an object"))
        value = {}
    for key in value:
        if key not in shape:
            errors.append(f'unknown field "{_join(path, str(key))}"')
    return {key: _decode(value.get(key), sub, _join(path, key), errors) for key, sub in shape.items()}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- validation, as kube-apiserver's ----------------------------------------------------------------------


def _validate_url(url: str, path: str) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        return [invalid(path, url, str(exc))]
    errors = []
    if parts.scheme != "https":
        errors.append(invalid(path, url, "URL scheme must be https"))
    if "@" in parts.netloc:
        errors.append(invalid(path, url, "URL must not contain a username or password"))
    if parts.query:
        errors.append(invalid(path, url, "URL must not contain a query"))
    if parts.fragment:
        errors.append(invalid(path, url, "URL must not contain a fragment"))
    return errors


def _validate_issuer(issuer: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    url, discovery = issuer["url"], issuer["discoveryURL"]
    if not url:
        errors.append(required(f"{path}.url"))
    else:
        errors += _validate_url(url, f"{path}.url")
    if discovery:
        if url and url.rstrip("/") == discovery.rstrip("/"):
            errors.append(invalid(f"{path}.discoveryURL", discovery, "discoveryURL must be different from URL"))
        errors += _validate_url(discovery, f"{path}.discoveryURL")
    errors += _validate_audiences(issuer["audiences"], issuer["audienceMatchPolicy"], path)
    if issuer["certificateAuthority"] and not _parses_as_ca(issuer["certificateAuthority"]):
        errors.append(
            invalid(
                f"{path}.certificateAuthority", "<omitted>", "data does not contain any valid RSA or ECDSA certificates"
            )
        )
    egress = issuer["egressSelectorType"]
    if egress and egress not in ("controlplane", "cluster"):
        errors.append(
            invalid(f"{path}.egressSelectorType", egress, "egress selector must be either controlplane or cluster")
        )
    elif egress == "controlplane":
        errors.append(
            invalid(
                f"{path}.egressSelectorType",
                egress,
                "the proxy cannot reach the issuer through the control plane's network: use cluster or leave it empty",
            )
        )
    return errors


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
                f"{path}.audienceMatchPolicy", policy, "audienceMatchPolicy must be MatchAny for multiple audiences"
            )
        )
    if len(audiences) == 1 and policy and policy != MATCH_ANY:
        errors.append(
            invalid(
                f"{path}.audienceMatchPolicy",
                policy,
                "audienceMatchPolicy must be empty or MatchAny for single audience",
            )
        )
    return errors


def _parses_as_ca(pem: str) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        return False
    return bool(context.get_ca_certs())


class _Validator:
    """One JWT authenticator: the checks of validateJWTAuthenticator, compiling each expression once."""

    def __init__(self, compiler: Compiler, path: str) -> None:
        self.compiler = compiler
        self.path = path
        self.errors: list[str] = []
        self.uses_email = False
        self.uses_email_verified = False

    def compile(self, expression: str, path: str, *, variable: str = CLAIMS, boolean: bool = False) -> Program | None:
        try:
            return self.compiler.compile(expression, variable, boolean=boolean)
        except CelCompileError as exc:
            self.errors.append(invalid(path, expression, str(exc)))
            return None

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

    def prefixed(self, mapping: dict[str, Any], path: str, *, required_mapping: bool) -> ClaimMapping | None:
        claim, expression, prefix = mapping["claim"], mapping["expression"], mapping["prefix"]
        if claim and expression:
            self.errors.append(invalid(path, "", "claim and expression can't both be set"))
        elif not claim and not expression:
            if required_mapping:
                self.errors.append(required(path, "claim or expression is required"))
        elif expression:
            if prefix is not None:
                self.errors.append(invalid(f"{path}.prefix", prefix, "may not be specified when expression is set"))
            program = self.compile(expression, f"{path}.expression")
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
            program = self.compile(mapping["expression"], f"{path}.expression")
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
            if key in seen:
                self.errors.append(duplicate(f"{path}.key", key))
                continue
            seen.add(key)
            if not mapping["valueExpression"]:
                self.errors.append(required(f"{path}.valueExpression"))
                continue
            program = self.compile(mapping["valueExpression"], f"{path}.valueExpression")
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
    issuer = jwt["issuer"]
    errors = _validate_issuer(issuer, f"{path}.issuer")
    check = _Validator(compiler, path)
    required_claims, claim_rules = check.claim_rules(jwt["claimValidationRules"])
    mappings = jwt["claimMappings"]
    username = check.prefixed(mappings["username"], f"{path}.claimMappings.username", required_mapping=True)
    if username is not None and username.expression is not None:
        expression = mappings["username"]["expression"]
        check.uses_email = selects_claim(expression, "email")
        check.uses_email_verified |= selects_claim(expression, "email_verified")
    groups = check.prefixed(mappings["groups"], f"{path}.claimMappings.groups", required_mapping=False)
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
        ca_pem=issuer["certificateAuthority"].encode() or None,
    )
    return spec, []


def parse_authentication_config(text: str | bytes, compiler: Compiler | None = None) -> AuthenticationConfig:
    """The file's JWT authenticators, or ``AuthConfigError`` listing every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AuthConfigError([f"not YAML or JSON: {exc}"]) from None
    errors: list[str] = []
    config = _decode(document, _DOCUMENT, "", errors)
    if config["apiVersion"] not in API_VERSIONS:
        errors.append(invalid("apiVersion", config["apiVersion"], f"must be one of {', '.join(API_VERSIONS)}"))
    if config["kind"] != KIND:
        errors.append(invalid("kind", config["kind"], f"must be {KIND}"))
    if errors:
        raise AuthConfigError(errors)
    jwts: list[dict[str, Any]] = config["jwt"]
    if len(jwts) > MAX_AUTHENTICATORS:
        raise AuthConfigError([f"jwt: Too many: {len(jwts)}: must have at most {MAX_AUTHENTICATORS} items"])
    compiler = compiler or Compiler()
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
        errors.append(invalid("anonymous.conditions", "", "enabled should be set to true when conditions are defined"))
    if anonymous["enabled"]:
        errors.append(
            invalid(
                "anonymous.enabled",
                True,
                "the proxy never forwards a request without a token: anonymous must be disabled",
            )
        )
    if errors:
        raise AuthConfigError(errors)
    return AuthenticationConfig(tuple(specs))
