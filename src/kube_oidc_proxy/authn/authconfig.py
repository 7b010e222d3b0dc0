"""kube-apiserver's AuthenticationConfiguration file (``--authentication-config``) -> JWT authenticator specs.

The file is read as kube-apiserver reads it, and refused in its words:

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

import base64
import binascii
import ipaddress
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any, Final

import yaml
from cryptography import x509

from kube_oidc_proxy.authn.cel import CLAIMS, USER, CelCompileError, Compiler, Program
from kube_oidc_proxy.authn.celscan import selects_claim
from kube_oidc_proxy.authn.model import (
    SUPPORTED_SIGNING_ALGS,
    ClaimMapping,
    ExtraMapping,
    JWTAuthenticatorSpec,
    ValidationRule,
)

GROUP: Final = "apiserver.config.k8s.io"
API_VERSIONS: Final = (f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha1")
KIND: Final = "AuthenticationConfiguration"
MAX_AUTHENTICATORS: Final = 64
MAX_STRICT_ERRORS: Final = 100  # sigs.k8s.io/json keeps no more
MATCH_ANY: Final = "MatchAny"
EMPTY_FILE: Final = "empty config data"
EMAIL_VERIFIED_RULE: Final = (
    "claims.email_verified must be used in claimMappings.username.expression or "
    "claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in "
    "claimMappings.username.expression"
)
NO_CERTIFICATES: Final = "data does not contain any valid RSA or ECDSA certificates"
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


# --- Go's renderings --------------------------------------------------------------------------------------

_GO_ESCAPES: Final = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip


def go_quote(value: str | bytes) -> str:
    """Go's ``strconv.Quote`` (``%q``): bytes that are not UTF-8 become ``\\xNN``."""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():  # Python's printable set is Go's unicode.IsPrint: letters, marks, ..., and " "
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_json(value: object) -> str:
    """Go's ``json.Marshal``: compact, with <, >, & and the line separators escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escape)
    return text.replace("\u2029", "\\u2029")


@dataclass(frozen=True, slots=True)
class GoJSON:
    """A field value that kube-apiserver renders with json.Marshal: named string types, structs, lists."""

    value: object


def _render(value: object) -> str:
    """A bad value as ``field.Error`` shows it: %q for strings, %v for booleans and numbers, else JSON."""
    if isinstance(value, GoJSON):
        return go_json(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)


def invalid(path: str, value: object, detail: str) -> str:
    return f"{path}: Invalid value: {_render(value)}: {detail}"


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def duplicate(path: str, value: object) -> str:
    return f"{path}: Duplicate value: {_render(value)}"


def too_many(path: str, count: int, limit: int) -> str:
    return f"{path}: Too many: {count}: must have at most {limit} item{'' if limit == 1 else 's'}"


# --- loading: YAML as go.yaml.in/yaml/v2 reads it, JSON as encoding/json ------------------------------------

_YAML_TRUE: Final = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_YAML_FALSE: Final = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_YAML_NULL: Final = frozenset({"", "~", "null", "Null", "NULL"})
_YAML_SPECIAL_FLOATS: Final = frozenset(
    sign + dot_name for sign in ("", "+", "-") for dot_name in (".inf", ".Inf", ".INF")
) | {".nan", ".NaN", ".NAN"}
_GO_INT: Final = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)")  # underscores removed
_GO_YAML_FLOAT: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_GO_DOT_FLOAT: Final = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_TAG: Final = "tag:yaml.org,2002:"


def _yaml_plain_tag(value: str) -> str:
    """The tag go.yaml.in/yaml/v2's ``resolve`` gives a plain (unquoted) scalar."""
    if value == "<<":
        return _TAG + "merge"
    if value in _YAML_TRUE or value in _YAML_FALSE:
        return _TAG + "bool"
    if value in _YAML_NULL:
        return _TAG + "null"
    if value in _YAML_SPECIAL_FLOATS:
        return _TAG + "float"
    if value[0] in "+-0123456789":
        plain = value.replace("_", "")
        if _GO_INT.fullmatch(plain) or _GO_YAML_FLOAT.fullmatch(plain):
            return _TAG + "float"
    elif value[0] == "." and _GO_DOT_FLOAT.fullmatch(value):
        return _TAG + "float"
    return _TAG + "str"  # a timestamp too: decoded into interface{}, yaml.v2 keeps its text


def _yaml_number(loader: yaml.SafeLoader, node: yaml.Node) -> int | float:
    # Only its being a number matters: every field of the file is a string, a boolean, a list or an object.
    text = str(node.value).replace("_", "")
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    except ValueError:
        return 0.0


def _go_key(key: object) -> str:
    """A YAML key as kube-apiserver's YAML-to-JSON conversion spells it."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


class _YAMLLoader(yaml.SafeLoader):
    """PyYAML with yaml.v2's scalars, reporting duplicate keys as yaml.v2's strict mode does."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[str] = []

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _yaml_plain_tag(value) if implicit[0] else _TAG + "str"
        return _TAG + ("seq" if kind is yaml.SequenceNode else "map")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _TAG + "merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                where = value_node.start_mark.line + 1
                shown = go_quote(key) if isinstance(key, str) else _go_key(key)
                self.duplicate_keys.append(f"line {where}: key {shown} already set in map")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YAMLLoader.add_constructor(_TAG + "bool", lambda loader, node: node.value in _YAML_TRUE)
_YAMLLoader.add_constructor(_TAG + "float", _yaml_number)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object with its keys in order, duplicates kept (sigs.k8s.io/json reports them)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class _Loaded:
    document: Any
    is_json: bool
    duplicate_keys: tuple[str, ...]  # yaml.v2 strict mode's lines


def _load(text: str) -> _Loaded:
    if not text:
        raise AuthConfigError([EMPTY_FILE])
    if text.lstrip(" \t\r\n").startswith("{"):  # k8s.io/apimachinery's IsJSONBuffer: the JSON serializer reads it
        try:
            document = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
        except ValueError as exc:
            raise AuthConfigError([f"not valid JSON: {exc}"]) from None
        return _Loaded(document, True, ())
    loader = _YAMLLoader(text)
    try:
        document = loader.get_data()  # the first document only, as yaml.v2 (None for an empty stream)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise AuthConfigError([f"yaml: {where}{exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise AuthConfigError([f"yaml: {exc}"]) from None
    finally:
        loader.dispose()
    return _Loaded(document, False, tuple(loader.duplicate_keys))


def _pairs(value: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(value, _Pairs):
        return list(value)
    if isinstance(value, dict):
        return list(value.items())
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, _Pairs | dict):
        return "object"
    if isinstance(value, list | tuple | set):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


# --- strict decoding into the versioned types (k8s.io/apiserver pkg/apis/apiserver/<version>/types.go) ------


@dataclass(frozen=True, slots=True)
class _Scalar:
    go_type: str  # "string", "bool", or a named type of the API package ("AudienceMatchPolicyType")
    python_type: type
    pointer: bool = False  # Go's *string: null and absent are nil (None), not ""

    def zero(self) -> Any:
        return None if self.pointer else self.python_type()


@dataclass(frozen=True, slots=True)
class _List:
    item: _Shape


@dataclass(frozen=True, slots=True)
class _Struct:
    name: str
    fields: dict[str, _Shape]


_Shape = _Scalar | _List | _Struct
_STRING: Final = _Scalar("string", str)
_BOOL: Final = _Scalar("bool", bool)
_PREFIXED: Final = _Struct(
    "PrefixedClaimOrExpression",
    {"claim": _STRING, "prefix": _Scalar("string", str, pointer=True), "expression": _STRING},
)
_DOCUMENT: Final = _Struct(
    "AuthenticationConfiguration",
    {
        "apiVersion": _STRING,
        "kind": _STRING,
        "jwt": _List(
            _Struct(
                "JWTAuthenticator",
                {
                    "issuer": _Struct(
                        "Issuer",
                        {
                            "url": _STRING,
                            "discoveryURL": _Scalar("string", str, pointer=True),
                            "certificateAuthority": _STRING,
                            "audiences": _List(_STRING),
                            "audienceMatchPolicy": _Scalar("AudienceMatchPolicyType", str),
                            "egressSelectorType": _Scalar("EgressSelectorType", str),
                        },
                    ),
                    "claimValidationRules": _List(
                        _Struct(
                            "ClaimValidationRule",
                            {"claim": _STRING, "requiredValue": _STRING, "expression": _STRING, "message": _STRING},
                        )
                    ),
                    "claimMappings": _Struct(
                        "ClaimMappings",
                        {
                            "username": _PREFIXED,
                            "groups": _PREFIXED,
                            "uid": _Struct("ClaimOrExpression", {"claim": _STRING, "expression": _STRING}),
                            "extra": _List(_Struct("ExtraMapping", {"key": _STRING, "valueExpression": _STRING})),
                        },
                    ),
                    "userValidationRules": _List(
                        _Struct("UserValidationRule", {"expression": _STRING, "message": _STRING})
                    ),
                },
            )
        ),
        "anonymous": _Struct(
            "AnonymousAuthConfig",
            {"enabled": _BOOL, "conditions": _List(_Struct("AnonymousAuthCondition", {"path": _STRING}))},
        ),
    },
)


class _Decoder:
    """sigs.k8s.io/json's strict decoding: the first type error, then every unknown or duplicate field."""

    def __init__(self, package: str, *, sort_keys: bool) -> None:
        self.package = package
        self.sort_keys = sort_keys
        self.type_error = ""
        self.strict_errors: list[str] = []

    def go_type(self, shape: _Shape) -> str:
        if isinstance(shape, _List):
            return "[]" + self.go_type(shape.item)
        if isinstance(shape, _Struct):
            return f"{self.package}.{shape.name}"
        return shape.go_type if shape.go_type in ("string", "bool") else f"{self.package}.{shape.go_type}"

    def decode(self, value: Any, shape: _Shape, path: str, struct: str, fields: tuple[str, ...]) -> Any:
        """``value`` as ``shape``; absent and null are Go's zero values. ``struct`` and ``fields`` name the
        innermost struct and the field names from the top (Go's error context); ``path`` has list indexes."""
        if isinstance(shape, _Scalar):
            if value is None:
                return shape.zero()
            if type(value) is not shape.python_type:
                return self.mismatch(value, shape, struct, fields, shape.zero())
            return value
        if isinstance(shape, _List):
            if value is None:
                return []
            if not isinstance(value, list) or isinstance(value, _Pairs):
                return self.mismatch(value, shape, struct, fields, [])
            return [self.decode(item, shape.item, f"{path}[{i}]", struct, fields) for i, item in enumerate(value)]
        result = {name: self.decode(None, sub, "", shape.name, ()) for name, sub in shape.fields.items()}
        if value is None:
            return result
        pairs = _pairs(value)
        if pairs is None:
            return self.mismatch(value, shape, struct, fields, result)
        if self.sort_keys:  # Go's YAML-to-JSON conversion marshals a map: its keys come out sorted
            pairs.sort(key=lambda pair: _go_key(pair[0]))
        seen: set[str] = set()
        for key, item in pairs:
            name = _go_key(key)
            field_path = f"{path}.{name}" if path else name
            sub = shape.fields.get(name)
            if sub is None:
                self.strict(f"unknown field {go_quote(field_path)}")
                continue
            if name in seen:
                self.strict(f"duplicate field {go_quote(field_path)}")
            seen.add(name)
            result[name] = self.decode(item, sub, field_path, shape.name, (*fields, name))
        return result

    def mismatch(self, value: Any, shape: _Shape, struct: str, fields: tuple[str, ...], zero: Any) -> Any:
        if not self.type_error:
            self.type_error = (
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {struct}.{'.'.join(fields)} "
                f"of type {self.go_type(shape)}"
            )
        return zero

    def strict(self, message: str) -> None:
        if message not in self.strict_errors and len(self.strict_errors) < MAX_STRICT_ERRORS:
            self.strict_errors.append(message)


def _decode(text: str) -> dict[str, Any]:
    """The document as kube-apiserver decodes it into the versioned type, or AuthConfigError."""
    loaded = _load(text)
    document = {} if loaded.document is None else loaded.document
    pairs = _pairs(document)
    if pairs is None:
        found = {"array": "a list", "string": "a string", "number": "a number", "bool": "a boolean"}
        raise AuthConfigError([f"an AuthenticationConfiguration must be an object, not {found[_json_kind(document)]}"])
    top = dict(pairs)
    errors = []
    api_version, kind = top.get("apiVersion"), top.get("kind")
    if api_version not in API_VERSIONS:
        errors.append(
            invalid(
                "apiVersion", "" if api_version is None else api_version, f"must be one of {', '.join(API_VERSIONS)}"
            )
        )
    if kind != KIND:
        errors.append(invalid("kind", "" if kind is None else kind, f"must be {KIND}"))
    if errors:
        raise AuthConfigError(errors)
    decoder = _Decoder(str(api_version).rpartition("/")[2], sort_keys=not loaded.is_json)
    config: dict[str, Any] = decoder.decode(document, _DOCUMENT, "", _DOCUMENT.name, ())
    if decoder.type_error:
        raise AuthConfigError([decoder.type_error])
    strict = list(decoder.strict_errors)
    if loaded.duplicate_keys:
        strict.insert(0, "yaml: unmarshal errors:\n  " + "\n  ".join(loaded.duplicate_keys))
    if strict:
        raise AuthConfigError(["strict decoding error: " + ", ".join(strict)])
    return config


# --- Go's net/url.Parse, as far as validateURL needs it -----------------------------------------------------


class GoURLError(ValueError):
    """``url.Parse`` failed; the message is Go's ``parse "<url>": <reason>``."""


@dataclass(frozen=True, slots=True)
class GoURL:
    scheme: str  # lowercased, as Go does
    has_user: bool  # any "@" in the authority, even "https://@host"
    raw_query: str
    fragment: str


_HOST, _ZONE, _PATH, _USER, _FRAGMENT = range(5)
_HOST_SAFE: Final = frozenset(b"!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_SAFE: Final = frozenset("-._:~!$&'()*+,;=%@")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


def go_parse_url(raw: str) -> GoURL:
    """Go's ``url.Parse`` (net/url, with strict host colons for http and https: go.dev/issue/75223):
    the parts validateURL looks at, or GoURLError with Go's message. An invalid IP literal's reason is the
    proxy's own wording after ``invalid host: ``."""
    data = raw.encode("utf-8", "surrogateescape")
    before, _, fragment = data.partition(b"#")
    try:
        url = _parse(before)
    except GoURLError as exc:
        raise GoURLError(f"parse {go_quote(before)}: {exc}") from None
    if fragment:
        try:
            _unescape(fragment, _FRAGMENT)
        except GoURLError as exc:
            raise GoURLError(f"parse {go_quote(data)}: {exc}") from None
    return GoURL(url.scheme, url.has_user, url.raw_query, fragment.decode("utf-8", "surrogateescape"))


def _parse(raw: bytes) -> GoURL:
    if any(byte < 0x20 or byte == 0x7F for byte in raw):
        raise GoURLError("net/url: invalid control character in URL")
    if raw == b"*":
        return GoURL("", False, "", "")
    scheme, rest = _scheme(raw)
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        rest, query = rest[:-1], b""
    else:
        rest, _, query = rest.partition(b"?")
    raw_query = query.decode("utf-8", "surrogateescape")
    if not rest.startswith(b"/"):
        if scheme:
            return GoURL(scheme, False, raw_query, "")  # opaque: "https:host" passes
        if b":" in rest.partition(b"/")[0]:
            raise GoURLError("first path segment in URL cannot contain colon")
    has_user = False
    if (scheme or not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, slash, path = rest[2:].partition(b"/")
        rest = slash + path
        has_user = _parse_authority(scheme, authority)
    _unescape(rest, _PATH)
    return GoURL(scheme, has_user, raw_query, "")


def _scheme(raw: bytes) -> tuple[str, bytes]:
    for i, byte in enumerate(raw):
        char = chr(byte)
        if char.isascii() and char.isalpha():
            continue
        if char.isdigit() or char in "+-.":
            if i == 0:
                return "", raw
            continue
        if char == ":":
            if i == 0:
                raise GoURLError("missing protocol scheme")
            return raw[:i].decode("ascii").lower(), raw[i + 1 :]
        return "", raw
    return "", raw


def _parse_authority(scheme: str, authority: bytes) -> bool:
    """True if the authority has user information; raises for an invalid host or user information."""
    at = authority.rfind(b"@")
    _parse_host(scheme, authority[at + 1 :])
    if at < 0:
        return False
    userinfo = authority[:at]
    text = userinfo.decode("utf-8", "replace")
    if not all((char.isascii() and char.isalnum()) or char in _USERINFO_SAFE for char in text):
        raise GoURLError("net/url: invalid userinfo")
    for part in userinfo.split(b":", 1):
        _unescape(part, _USER)
    return True


def _parse_host(scheme: str, host: bytes) -> None:
    open_bracket = host.rfind(b"[")
    if open_bracket > 0:
        raise GoURLError("invalid IP-literal")
    if open_bracket == 0:
        close_bracket = host.rfind(b"]")
        if close_bracket < 0:
            raise GoURLError("missing ']' in host")
        colon_port = host[close_bracket + 1 :]
        if not _valid_optional_port(colon_port):
            raise GoURLError(f"invalid port {go_quote(colon_port)} after host")
        _unescape(colon_port, _HOST)
        hostname = host[1:close_bracket]
        zone = hostname.find(b"%25")
        if zone >= 0:
            literal = _unescape(hostname[:zone], _HOST) + _unescape(hostname[zone:], _ZONE)
        else:
            literal = _unescape(hostname, _HOST)
        _check_ipv6_literal(literal)
        return
    colon = host.find(b":")
    if colon >= 0:
        if scheme not in ("http", "https"):
            colon = host.rfind(b":")
        if not _valid_optional_port(host[colon:]):
            raise GoURLError(f"invalid port {go_quote(host[colon:])} after host")
    _unescape(host, _HOST)


def _check_ipv6_literal(literal: bytes) -> None:
    text = literal.decode("utf-8", "replace")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise GoURLError(f"invalid host: ParseAddr({go_quote(literal)}): not an IP address") from None
    if address.version == 4:
        raise GoURLError("invalid IP-literal")


def _valid_optional_port(port: bytes) -> bool:
    return not port or (port[:1] == b":" and all(0x30 <= byte <= 0x39 for byte in port[1:]))


def _unescape(text: bytes, mode: int) -> bytes:
    """Go's ``unescape``: checks every %-escape (and a host's characters) and decodes them."""
    out = bytearray()
    i = 0
    while i < len(text):
        byte = text[i]
        if byte == 0x25:  # %
            escape = text[i : i + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            value = int(escape[1:], 16)
            if mode == _HOST and value < 0x80 and escape != b"%25":
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            if mode == _ZONE and escape != b"%25" and value != 0x20 and not _host_safe(value):
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            out.append(value)
            i += 3
            continue
        if mode in (_HOST, _ZONE) and byte < 0x80 and not _host_safe(byte):
            raise GoURLError(f"invalid character {go_quote(bytes([byte]))} in host name")
        out.append(byte)
        i += 1
    return bytes(out)


def _host_safe(byte: int) -> bool:
    return (chr(byte).isascii() and chr(byte).isalnum()) or byte in _HOST_SAFE


# --- client-go cert.NewPoolFromBytes ------------------------------------------------------------------------

_PEM_BEGIN: Final = b"\n-----BEGIN "
_PEM_END: Final = b"\n-----END "
_PEM_DASHES: Final = b"-----"


def _pem_line(data: bytes) -> tuple[bytes, bytes]:
    newline = data.find(b"\n")
    if newline < 0:
        return data.rstrip(b" \t"), b""
    end = newline - 1 if newline > 0 and data[newline - 1] == 0x0D else newline
    return data[:end].rstrip(b" \t"), data[newline + 1 :]


def _pem_block(data: bytes) -> tuple[tuple[bytes, bool, bytes] | None, bytes]:
    """Go's ``pem.Decode``: the next block's (type, has headers, contents) and the rest, or None."""
    rest = data
    while True:
        if rest.startswith(_PEM_BEGIN[1:]):
            rest = rest[len(_PEM_BEGIN) - 1 :]
        else:
            start = rest.find(_PEM_BEGIN)
            if start < 0:
                return None, data
            rest = rest[start + len(_PEM_BEGIN) :]
        type_line, rest = _pem_line(rest)
        if not type_line.endswith(_PEM_DASHES):
            continue
        block_type = type_line[: -len(_PEM_DASHES)]
        headers = False
        while True:
            if not rest:
                return None, data
            line, following = _pem_line(rest)
            if b":" not in line:
                break
            headers, rest = True, following
        if not headers and rest.startswith(_PEM_END[1:]):
            end, trailer_start = 0, len(_PEM_END) - 1
        else:
            end = rest.find(_PEM_END)
            trailer_start = end + len(_PEM_END)
        if end < 0:
            continue
        trailer_length = len(block_type) + len(_PEM_DASHES)
        trailer = rest[trailer_start : trailer_start + trailer_length]
        if len(trailer) < trailer_length or not trailer.startswith(block_type) or not trailer.endswith(_PEM_DASHES):
            continue
        if _pem_line(rest[trailer_start + trailer_length :])[0]:
            continue
        body = rest[:end].translate(None, b" \t\r\n")
        try:
            contents = base64.b64decode(body, validate=True)
        except binascii.Error:
            continue
        return (block_type, headers, contents), _pem_line(rest[end + len(_PEM_END) - 1 :])[1]


def _parse_ca(pem: str) -> tuple[list[bytes], str]:
    """client-go ``cert.ParseCertsPEM``: the DER certificates, or Go's error. CERTIFICATE blocks with
    headers and other blocks are skipped; the first malformed certificate stops it (its reason is worded
    by the proxy: cryptography, not Go's crypto/x509, parses it)."""
    certificates: list[bytes] = []
    data = pem.encode("utf-8", "surrogateescape")
    while data:
        block, data = _pem_block(data)
        if block is None:
            break
        block_type, headers, contents = block
        if block_type != b"CERTIFICATE" or headers:
            continue
        try:
            x509.load_der_x509_certificate(contents)
        except ValueError:
            return certificates, "x509: malformed certificate"
        certificates.append(contents)
    return certificates, "" if certificates else NO_CERTIFICATES


def _ca_bundle(certificates: list[bytes]) -> bytes:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in certificates).encode("ascii")


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
        certificates, problem = _parse_ca(issuer["certificateAuthority"])
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
        context.load_verify_locations(cadata=_ca_bundle(certificates).decode("ascii"))
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
    """validateJWTAuthenticator: the spec, or the authenticator's errors in kube-apiserver's order."""
    issuer = jwt["issuer"]
    errors = _validate_issuer(issuer, f"{path}.issuer")
    check = _Validator(compiler, path)
    required_claims, claim_rules = check.claim_rules(jwt["claimValidationRules"])
    mappings = jwt["claimMappings"]
    before = len(check.errors)
    username = check.prefixed(mappings["username"], f"{path}.claimMappings.username", required_mapping=True)
    if len(check.errors) == before and username is not None and username.expression is not None:
        # only a username expression without any error is scanned (kube-apiserver: err == nil)
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
    certificates = _parse_ca(issuer["certificateAuthority"])[0] if issuer["certificateAuthority"] else []
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
        ca_pem=_ca_bundle(certificates) if certificates else None,
    )
    return spec, []


def parse_authentication_config(text: str | bytes, compiler: Compiler | None = None) -> AuthenticationConfig:
    """The file's JWT authenticators, or ``AuthConfigError`` listing every problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthConfigError([f"the file is not UTF-8 text: {exc}"]) from None
    config = _decode(text)
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
