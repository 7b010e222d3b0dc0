"""CEL for AuthenticationConfiguration: compile once at load, evaluate per token.

The rest of the proxy sees only ``Compiler`` and ``Program``; the engine (cel-expr-python, which wraps
cel-cpp) stays in this module. The environment follows kube-apiserver's authentication compiler
(k8s.io/apiserver pkg/authentication/cel): a ``claims`` variable (map of string to any) for claim
mappings and claim validation rules, a ``user`` variable (username, uid, groups, extra) for user
validation rules, the standard functions and macros, optional types (``claims.?x.orValue(y)``), the
strings extension, and Kubernetes' ``sets`` and list functions (``isSorted``, ``sum``, ``min``, ``max``,
``indexOf``, ``lastIndexOf``). Kubernetes' url, regex ``find``, quantity, IP/CIDR, format and semver
libraries are not provided: an expression using them fails at load with "undeclared reference", never at
request time.

Values are given to CEL the way kube-apiserver gives them: JSON numbers are doubles (Go decodes JSON
numbers into float64), and a map key that is not a CEL identifier can be selected in its escaped form
(``claims.foo__dot__bar`` is the claim ``foo.bar``), as well as with ``claims["foo.bar"]``. kube-apiserver
unescapes the key when a map is looked up; cel-cpp has no such hook, so the expression is rewritten instead, once,
at compile time: ``x.foo__dot__bar`` becomes ``x["foo.bar"]``, ``x.?foo__dot__bar`` becomes ``x[?"foo.bar"]`` and
``has(x.foo__dot__bar)`` becomes ``("foo.bar" in x)``. The maps themselves hold only their real keys, so
``size()``, ``in``, ``all``/``exists`` and ``map`` see what kube-apiserver's see (``user.extra.size()`` counts
each extra key once). What is not reproduced: kube-apiserver also unescapes a string key given to an index
(``claims["foo__dot__bar"]`` reads ``foo.bar`` there, the key ``foo__dot__bar`` here).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cel_expr_python import cel

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
    """The identifier kube-apiserver lets expressions use for a map key that is not one, or None (see ``unescaped``)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.fullmatch(name):
        return None
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


_ESCAPE_SEQUENCE: Final = re.compile(r"__[^_]+__")
_EXPANSIONS: Final = {"underscores": "__", "dot": ".", "dash": "-", "slash": "/"}


def unescaped(identifier: str) -> str | None:
    """The map key an escaped identifier stands for (k8s.io/apiserver pkg/cel Unescape), or None if it is not one.

    ``foo__dot__bar`` -> ``foo.bar``, ``__if__`` -> ``if``; an identifier without escape sequences, or with one
    kube-apiserver does not know (``foo__bar__baz``), is its own key and gives None.
    """
    valid = True

    def expand(match: re.Match[str]) -> str:
        nonlocal valid
        contents = match.group()[2:-2]
        if contents in _EXPANSIONS:
            return _EXPANSIONS[contents]
        if contents in _RESERVED and len(match.group()) == len(identifier):
            return contents
        valid = False
        return ""

    key = _ESCAPE_SEQUENCE.sub(expand, identifier)
    return key if valid and key != identifier else None


# The lexical tokens of CEL that matter for finding field selections: strings and comments are skipped whole.
_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR])(?:'{3}.*?'{3}|"{3}.*?"{3}|'[^'\n]*'|"[^"\n]*")
             |[bB]?(?:'{3}(?:\\.|[^\\])*?'{3}|"{3}(?:\\.|[^\\])*?"{3}|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[uU]?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(expression: str) -> list[tuple[str, str]]:
    return [(match.lastgroup or "other", match.group()) for match in _TOKEN.finditer(expression)]


def _significant(tokens: list[tuple[str, str]], start: int, end: int, step: int = 1) -> int | None:
    """The index of the first token from ``start`` (towards ``end``, exclusive) that is not space or a comment."""
    for i in range(start, end, step):
        if tokens[i][0] != "space":
            return i
    return None


def _closing(tokens: list[tuple[str, str]], opening: int, end: int) -> int | None:
    depth = 0
    for i in range(opening, end):
        text = tokens[i][1]
        if tokens[i][0] == "other" and text in "([{":
            depth += 1
        elif tokens[i][0] == "other" and text in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _escaped_field(tokens: list[tuple[str, str]], i: int, end: int) -> str | None:
    """The key of an escaped identifier at ``i`` selected as a field (not called as a method), or None."""
    if tokens[i][0] != "ident":
        return None
    after = _significant(tokens, i + 1, end)
    if after is not None and tokens[after][1] == "(":
        return None
    return unescaped(tokens[i][1])


def _rewrite(tokens: list[tuple[str, str]], start: int, end: int) -> str:
    out: list[str] = []
    i = start
    while i < end:
        kind, text = tokens[i]
        if kind == "ident" and text == "has":
            before = _significant(tokens, i - 1, start - 1, -1)
            opening = _significant(tokens, i + 1, end)
            if (before is None or tokens[before][1] != ".") and opening is not None and tokens[opening][1] == "(":
                closing = _closing(tokens, opening, end)
                if closing is not None:
                    out.append(_rewrite_has(tokens, opening + 1, closing))
                    i = closing + 1
                    continue
        if kind == "other" and text == ".":
            field = _significant(tokens, i + 1, end)
            optional = field is not None and tokens[field][1] == "?"
            if field is not None and optional:
                field = _significant(tokens, field + 1, end)
            if field is not None and (key := _escaped_field(tokens, field, end)) is not None:
                out.append(f"[{'?' if optional else ''}{json.dumps(key)}]")
                i = field + 1
                continue
        out.append(text)
        i += 1
    return "".join(out)


def _rewrite_has(tokens: list[tuple[str, str]], start: int, end: int) -> str:
    """``has(x.f)`` with an escaped ``f`` is a key test on the map ``x``; anything else stays a ``has``."""
    last = _significant(tokens, end - 1, start - 1, -1)
    dot = _significant(tokens, last - 1, start - 1, -1) if last is not None else None
    if last is not None and dot is not None and tokens[dot][1] == ".":
        key = unescaped(tokens[last][1]) if tokens[last][0] == "ident" else None
        if key is not None:
            return f"({json.dumps(key)} in ({_rewrite(tokens, start, dot)}))"
    return f"has({_rewrite(tokens, start, end)})"


def unescape_selections(expression: str) -> str:
    """``expression`` with kube-apiserver's escaped field selections turned into index operations (see above)."""
    tokens = _tokens(expression)
    return _rewrite(tokens, 0, len(tokens))


# A surrogate code point alone: JSON's \ud800 escape makes one in Python; it is not Unicode text.
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def as_cel_text(text: str) -> str:
    """``text`` as kube-apiserver decodes it: Go's JSON decoder reads a lone surrogate escape as U+FFFD.

    The engine (C++) could not take it at all: it failed with a message about ``basic_string``."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def _double(number: float) -> float:
    """A JSON number as the double Go decodes it to; Go's decoder fails on one out of a double's range
    (``1e400``, a 400-digit integer), and so does this: Python would give inf, or fail as it converts."""
    try:
        double = float(number)
    except OverflowError:
        double = math.inf
    if not math.isfinite(double):
        raise CelEvaluationError(f"a claim holds a number out of the range of a double: {str(number)[:20]}...")
    return double


def as_cel_value(value: Any) -> Any:
    """A decoded JSON value as kube-apiserver presents it to CEL: numbers as doubles, maps with their own keys,
    text with U+FFFD for a lone surrogate (``as_cel_text``). Raises ``CelEvaluationError`` for a number Go
    cannot decode."""
    if isinstance(value, str):
        return as_cel_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return _double(value)
    if isinstance(value, list):
        return [as_cel_value(v) for v in value]
    if isinstance(value, dict):
        return {as_cel_text(k): as_cel_value(v) for k, v in value.items()}
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


def _last_index_of(items: list[Any], wanted: Any) -> int:
    return next((i for i in range(len(items) - 1, -1, -1) if _equal(items[i], wanted)), -1)


def _non_empty(function: Callable[[list[Any]], Any], name: str) -> Callable[[list[Any]], Any]:
    def call(items: list[Any]) -> Any:
        if not items:
            raise ValueError(f"{name}: list is empty")
        return function(items)

    return call


def _kubernetes_library() -> cel.CelExtension:
    """Declared as an extension after the strings extension, so that ``indexOf`` gets list overloads next
    to the string ones instead of colliding with them."""
    from cel_expr_python import cel  # noqa: PLC0415 - the engine (16 MB) loads only when a file needs it

    dyn, boolean, integer = cel.Type.DYN, cel.Type.BOOL, cel.Type.INT
    lists = cel.Type.List(dyn)

    def declare(
        name: str, result: cel.Type, parameters: list[cel.Type], impl: Callable[..., Any], member: bool
    ) -> cel.FunctionDecl:
        overload = cel.Overload(f"k8s_{name.replace('.', '_')}", result, parameters, is_member=member, impl=impl)
        return cel.FunctionDecl(name, [overload])

    return cel.CelExtension(
        "kubernetes",
        [
            declare("sets.contains", boolean, [lists, lists], _contains, False),
            declare(
                "sets.equivalent", boolean, [lists, lists], lambda a, b: _contains(a, b) and _contains(b, a), False
            ),
            declare(
                "sets.intersects", boolean, [lists, lists], lambda a, b: any(_index_of(a, x) >= 0 for x in b), False
            ),
            declare("isSorted", boolean, [lists], _is_sorted, True),
            declare(
                "sum",
                dyn,
                [lists],
                lambda items: sum(items, 0.0 if any(isinstance(i, float) for i in items) else 0),
                True,
            ),
            declare("min", dyn, [lists], _non_empty(min, "min"), True),
            declare("max", dyn, [lists], _non_empty(max, "max"), True),
            declare("indexOf", integer, [lists, dyn], _index_of, True),
            declare("lastIndexOf", integer, [lists, dyn], _last_index_of, True),
        ],
    )


class Binding:
    """A variable's value for one token: converted to CEL values once and shared by every program that reads
    it (building the engine's activation costs about as much as evaluating a short expression)."""

    __slots__ = ("_activations", "value", "variable")

    def __init__(self, variable: str, value: Any) -> None:
        self.variable = variable
        self.value = as_cel_value(value)
        self._activations: dict[int, Any] = {}

    def activation(self, env: Any) -> Any:
        activation = self._activations.get(id(env))
        if activation is None:
            activation = self._activations[id(env)] = env.Activation({self.variable: self.value})
        return activation


@dataclass(frozen=True, slots=True)
class Program:
    """One compiled expression over one variable (``claims`` or ``user``)."""

    expression: str
    variable: str
    result_type: str  # CEL's name for the checked result type: BOOL, STRING, DYN, LIST<STRING>, ...
    _compiled: Any  # cel.Expression
    _env: Any  # the cel.Env it was compiled in

    def evaluate(self, binding: Binding) -> Any:
        """The result as a plain Python value."""
        try:
            result = self._compiled.eval(binding.activation(self._env))
        except Exception as exc:  # the engine raises for failures it does not model as CEL errors
            raise CelEvaluationError(str(exc)) from exc
        if result.type().name() == "ERROR":
            raise CelEvaluationError(str(result.value()))
        return result.plain_value()


class Compiler:
    """Two environments, one per variable, built once and shared by every authenticator."""

    def __init__(self) -> None:
        from cel_expr_python import cel  # noqa: PLC0415 - the engine (16 MB) loads only when a file needs it
        from cel_expr_python.ext import ext_optional, ext_strings  # noqa: PLC0415

        extensions = [ext_optional.ExtOptional(), ext_strings.ExtStrings(), _kubernetes_library()]
        self._envs = {
            name: cel.NewEnv(variables={name: cel.Type.Map(cel.Type.STRING, cel.Type.DYN)}, extensions=extensions)
            for name in (CLAIMS, USER)
        }

    def compile(self, expression: str, variable: str, *, boolean: bool = False) -> Program:
        """Compile and type-check; ``boolean``: the expression must be of type bool (validation rules)."""
        env = self._envs[variable]
        try:
            compiled = env.compile(expression)  # errors and the result type are those of the expression as written
            result_type = _result_type(compiled)
            rewritten = unescape_selections(expression)
            if rewritten != expression:
                compiled = env.compile(rewritten)
        except Exception as exc:
            raise CelCompileError("compilation failed: " + _first_lines(str(exc))) from exc
        if boolean and result_type != "BOOL":
            raise CelCompileError("must evaluate to bool")
        return Program(expression, variable, result_type, compiled, env)


def _result_type(compiled: cel.Expression) -> str:
    try:
        return str(compiled.return_type().name())
    except RuntimeError:  # a checked type cel-expr-python cannot name ({claims.?x: 1}: a map keyed by an optional)
        return "DYN"  # not BOOL; kube-apiserver accepts it for a mapping (it fails when evaluated, in both)


def _first_lines(message: str) -> str:
    # cel-cpp's message repeats the expression with a caret under the error; keep it, it shows where.
    return message.removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]").strip()
