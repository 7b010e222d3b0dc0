"""Which claims an expression selects, read from its tokens (cel-expr-python exposes no syntax tree).

kube-apiserver requires ``claims.email_verified`` to be used wherever a username expression uses
``claims.email``; it looks for a field selection on the ``claims`` variable: ``claims.email``,
``has(claims.email)`` or ``claims.?email``, not ``claims["email"]``. The same tokens give the same answer:
strings and comments are skipped, and ``x.claims.email`` is not the variable.
"""

from __future__ import annotations

import re
from typing import Final

_TOKEN: Final = re.compile(
    r"""
    (?P<comment>//[^\n]*)
  | (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(expression: str) -> list[str]:
    tokens = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind in ("comment", "space"):
            continue
        tokens.append("<string>" if kind == "string" else match.group())
    return tokens


def selects_claim(expression: str, claim: str, variable: str = "claims") -> bool:
    """True if ``expression`` selects ``claim`` as a field of the variable (``claims.x`` or ``claims.?x``)."""
    tokens = _tokens(expression)
    for i, token in enumerate(tokens):
        if token != variable or (i > 0 and tokens[i - 1] == "."):
            continue
        rest = tokens[i + 1 : i + 4]
        if rest[:2] == [".", claim] or rest[:3] == [".", "?", claim]:
            return True
    return False
