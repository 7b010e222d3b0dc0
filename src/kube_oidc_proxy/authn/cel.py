"""CEL for AuthenticationConfiguration: compile once at load, evaluate per token.

The rest of the proxy sees only ``Compiler`` and ``Program``; the engine (cel-expr-python, which wraps
cel-cpp) stays in this module. The environment follows kube-apiserver's authentication compiler
(k8s.io/apiserver pkg/authentication/cel): a ``claims`` variable (map of string to any) for claim
mappings and claim validation rules, a ``user`` variable (username, uid, groups, extra) for user
validation rules, the standard functions and macros, optional types (``claims.?x.orValue(y)``), the
strings extension, and Kubernetes' ``sets`` and list functions (``isSorted``, ``sum``, ``min``, ``max``; a
list's ``indexOf`` would collide with the strings extension's in cel-cpp). Kubernetes' url, regex ``find``,
quantity, IP/CIDR, format and semver libraries are not provided: an expression using them fails at load
with "undeclared reference", never at request time.

Values are given to CEL the way kube-apiserver gives them: JSON numbers are doubles (Go decodes JSON
numbers into float64), and a map key that is not a CEL identifier can be selected in its escaped form
(``claims.foo__dot__bar`` is the claim ``foo.bar``), as well as with ``claims["foo.bar"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cel_expr_python import cel
from cel_expr_python.ext import ext_optional, ext_strings

CLAIMS: Final = "claims"
USER: Final = "user"

# CEL's reserved words: a claim with one of these names is selected as __<word>__ (k8s.io/apiserver pkg/cel).
_RESERVED: Final = frozenset(
    {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
     "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
)  # fmt: skip
_ESCAPABLE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.\-/]*")


class CelCompileError(ValueError):
    """The expression does not compile, or its result type is not the one required."""


class CelEvaluationError(ValueError):
    """Evaluating the expression failed (a missing claim, a type mismatch, ...)."""


def escaped(name: str) -> str | None:
    """The identifier kube-apiserver lets expressions use for a map key that is not one, or None."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.fullmatch(name):
        return None
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


def as_cel_value(value: Any) -> Any:
    """A decoded JSON value as kube-apiserver presents it to CEL: numbers as doubles, escaped key aliases."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [as_cel_value(v) for v in value]
    if isinstance(value, dict):
        result = {k: as_cel_value(v) for k, v in value.items()}
        for key in value:
            alias = escaped(key)
            if alias is not None and alias != key and alias not in result:
                result[alias] = result[key]
        return result
    return value


# Kubernetes' sets extension (cel-go ext.Sets) and list library (k8s.io/apiserver pkg/cel/library/lists.go).
def _contains(items: list[Any], wanted: list[Any]) -> bool:
    return all(any(_equal(w, i) for i in items) for w in wanted)


def _equal(a: Any, b: Any) -> bool:
    # CEL equality: numbers compare across int/double, booleans are not numbers.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _is_sorted(items: list[Any]) -> bool:
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _index_of(items: list[Any], wanted: Any) -> int:
    return next((i for i, item in enumerate(items) if _equal(item, wanted)), -1)


def _non_empty(function: Callable[[list[Any]], Any], name: str) -> Callable[[list[Any]], Any]:
    def call(items: list[Any]) -> Any:
        if not items:
            raise ValueError(f"{name}: list is empty")
        return function(items)

    return call


def _functions() -> list[cel.FunctionDecl]:
    dyn, boolean = cel.Type.DYN, cel.Type.BOOL
    lists = cel.Type.List(dyn)

    def declare(
        name: str, result: cel.Type, parameters: list[cel.Type], impl: Callable[..., Any], member: bool
    ) -> cel.FunctionDecl:
        overload = cel.Overload(f"k8s_{name.replace('.', '_')}", result, parameters, is_member=member, impl=impl)
        return cel.FunctionDecl(name, [overload])

    return [
        declare("sets.contains", boolean, [lists, lists], _contains, False),
        declare("sets.equivalent", boolean, [lists, lists], lambda a, b: _contains(a, b) and _contains(b, a), False),
        declare("sets.intersects", boolean, [lists, lists], lambda a, b: any(_index_of(a, x) >= 0 for x in b), False),
        declare("isSorted", boolean, [lists], _is_sorted, True),
        declare(
            "sum", dyn, [lists], lambda items: sum(items, 0.0 if any(isinstance(i, float) for i in items) else 0), True
        ),
        declare("min", dyn, [lists], _non_empty(min, "min"), True),
        declare("max", dyn, [lists], _non_empty(max, "max"), True),
    ]


@dataclass(frozen=True, slots=True)
class Program:
    """One compiled expression over one variable (``claims`` or ``user``)."""

    expression: str
    variable: str
    result_type: str  # CEL's name for the checked result type: BOOL, STRING, DYN, LIST<STRING>, ...
    _compiled: cel.Expression

    def evaluate(self, value: Mapping[str, Any]) -> Any:
        """The result as a plain Python value; ``value`` is the variable, already passed through ``as_cel_value``."""
        try:
            result = self._compiled.eval(data={self.variable: value})
        except Exception as exc:  # the engine raises for failures it does not model as CEL errors
            raise CelEvaluationError(str(exc)) from exc
        if result.type().name() == "ERROR":
            raise CelEvaluationError(str(result.value()))
        return result.plain_value()


class Compiler:
    """Two environments, one per variable, built once and shared by every authenticator."""

    def __init__(self) -> None:
        extensions = [ext_optional.ExtOptional(), ext_strings.ExtStrings()]
        functions = _functions()
        self._envs = {
            CLAIMS: cel.NewEnv(
                variables={CLAIMS: cel.Type.Map(cel.Type.STRING, cel.Type.DYN)},
                extensions=extensions,
                functions=functions,
            ),
            USER: cel.NewEnv(
                variables={USER: cel.Type.Map(cel.Type.STRING, cel.Type.DYN)},
                extensions=extensions,
                functions=functions,
            ),
        }

    def compile(self, expression: str, variable: str, *, boolean: bool = False) -> Program:
        """Compile and type-check; ``boolean``: the expression must be of type bool (validation rules)."""
        try:
            compiled = self._envs[variable].compile(expression)
        except Exception as exc:
            raise CelCompileError("compilation failed: " + _first_lines(str(exc))) from exc
        result_type = compiled.return_type().name()
        if boolean and result_type != "BOOL":
            raise CelCompileError("must evaluate to bool")
        return Program(expression, variable, result_type, compiled)


def _first_lines(message: str) -> str:
    # cel-cpp's message repeats the expression with a caret under the error; keep it, it shows where.
    return message.removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]").strip()
