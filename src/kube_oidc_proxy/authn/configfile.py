"""Reading an AuthenticationConfiguration file as kube-apiserver's loader does: JSON, or YAML with
go.yaml.in/yaml/v2's scalars, then strict decoding into the versioned types (unknown and duplicate
fields, wrong JSON types) with kube-apiserver's error texts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import yaml

from kube_oidc_proxy.authn.fielderror import AuthConfigError, go_quote, invalid

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


GROUP: Final = "apiserver.config.k8s.io"
API_VERSIONS: Final = (f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha1")
KIND: Final = "AuthenticationConfiguration"
MAX_STRICT_ERRORS: Final = 100  # sigs.k8s.io/json keeps no more
EMPTY_FILE: Final = "empty config data"


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


def decode(text: str) -> dict[str, Any]:
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
