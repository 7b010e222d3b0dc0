"""Which claims an expression selects, read from its tokens (cel-expr-python exposes no syntax tree).

kube-apiserver requires ``claims.email_verified`` to be used wherever a username expression uses
``claims.email``. It walks the checked syntax tree (validation.go ``hasSelectExp``) for a field selection
whose operand is the identifier ``claims``: ``claims.email``, ``has(claims.email)`` or ``claims.?email``,
but not ``claims["email"]``, ``claims.email_`` or ``x.claims.email``. The walk reaches every part of the
expression (call arguments and receivers, list and map literals, macro bodies), so the question is only
whether such a selection occurs anywhere, which the tokens answer as well:

* strings (raw, bytes and triple-quoted ones too) and ``//`` comments are not code;
* ``claims`` is the identifier unless it is itself a field (``x.claims``, ``x.?claims``). A leading dot
  (``.claims``, the root-scoped name) is the identifier: cel-go's checker rewrites it to ``claims``;
* parentheses around the identifier do not matter (``(claims).email``: the tree has no parentheses),
  but a call's result is not the identifier (``f(claims).email``), and ``claims.email()`` is a call.

The expression must already have compiled: the scanner does not check syntax.
"""

from __future__ import annotations

import re
from typing import Final

_TOKEN: Final = re.compile(
    r"""
    (?P<comment>//[^\n]*)
  | (?P<raw>(?:[rR][bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*"))
  | (?P<string>[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERAL: Final = "<literal>"
_OPERATORS: Final = frozenset({"in"})  # an identifier-shaped token that is not an operand


def _tokens(expression: str) -> list[str]:
    tokens = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind in ("comment", "space"):
            continue
        tokens.append(_LITERAL if kind in ("raw", "string", "number") else match.group())
    return tokens


def _ends_operand(token: str) -> bool:
    """True if ``token`` can end an operand, so that a ``.`` or ``(`` after it selects or calls."""
    if token in (")", "]", "}", _LITERAL):
        return True
    return (token[0] == "_" or token[0].isalpha()) and token not in _OPERATORS


def selected_fields(expression: str, variable: str = "claims") -> set[str]:
    """The fields ``expression`` selects on the variable (``claims.x`` or ``claims.?x``)."""
    tokens = _tokens(expression)
    fields: set[str] = set()
    for i, token in enumerate(tokens):
        if token != variable:
            continue
        start = i
        if i > 0 and tokens[i - 1] == ".":
            if i > 1 and _ends_operand(tokens[i - 2]):
                continue  # x.claims: a field, not the variable
            start = i - 1  # .claims: the variable, named from the root scope
        elif i > 1 and tokens[i - 1] == "?" and tokens[i - 2] == ".":
            continue  # x.?claims
        groups = 0  # parentheses that only wrap the variable: "(claims)", not a call's "f(claims)"
        while start - groups > 0 and tokens[start - groups - 1] == "(":
            if start - groups > 1 and _ends_operand(tokens[start - groups - 2]):
                break
            groups += 1
        after = i + 1
        while groups and after < len(tokens) and tokens[after] == ")":
            after, groups = after + 1, groups - 1
        rest = tokens[after : after + 4]
        if rest[:2] == [".", "?"] and len(rest) > 2:
            fields.add(rest[2])
        elif rest[:1] == ["."] and len(rest) > 1 and rest[2:3] != ["("]:
            fields.add(rest[1])  # claims.email() would be a call, not a selection
    return fields


def selects_claim(expression: str, claim: str, variable: str = "claims") -> bool:
    """True if ``expression`` selects ``claim`` as a field of the variable (``claims.x`` or ``claims.?x``)."""
    return claim in selected_fields(expression, variable)
