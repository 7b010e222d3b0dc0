"""Values in a rejection reason: what the token said, and what was expected, safe for a log line.

A reason names the values that explain it (kube-apiserver's errors do: ``expected audience "a" got
["b"]``), and most of them come from the token: its claims and header fields are attacker-controlled text.
So every value is written the way Go's ``%q`` writes a string (kube-apiserver's errors, and
``fielderror.go_quote``): in double quotes, with ``\\"`` and ``\\\\``, ``\\n``, ``\\xNN`` for other C0 controls
and DEL, ``\\uNNNN`` for every other character that is not printable (C1 controls, bidi overrides, U+2028,
lone surrogates). A value therefore cannot end the line, move a terminal's cursor (ESC is ``\\x1b``),
reorder what a reader sees, or be confused with the text around it.

And bounded: at most ``VALUE_CHARS`` characters of escaped text per value, ``LIST_ITEMS`` items of a list,
two levels of nesting, ``CLAIM_CHARS`` for a whole claim; what is cut says how long it was. A 10 KB claim
costs a line about 200 characters. Work is bounded too: nothing walks more of a value than it writes.

Callers pass claims and header fields, never the token: no reason holds a signature or a whole payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

VALUE_CHARS: Final = 200  # an issuer URL with a tenant path (Entra ID, Cognito, B2C) fits whole
LIST_ITEMS: Final = 10
CLAIM_CHARS: Final = 600
MESSAGE_CHARS: Final = 300  # a CEL engine's error message, unquoted
_DEPTH: Final = 2

_ESCAPES: Final = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip


def _escaped(char: str, quotes: bool = True) -> str:
    code = ord(char)
    if quotes and char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():  # Python's printable set is Go's unicode.IsPrint (letters, marks, ..., and " ")
        return char
    if char in _ESCAPES:
        return _ESCAPES[char]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"  # C1 controls, format characters (bidi), separators, lone surrogates
    return f"\\U{code:08x}"


def _bounded(text: str, limit: int, quotes: bool) -> tuple[str, bool]:
    """The escaped text, cut before ``limit`` characters of output; True if it was cut."""
    if len(text) <= limit and text.isprintable() and not (quotes and ('"' in text or "\\" in text)):
        return text, False  # the common case: nothing to escape, nothing to cut
    out: list[str] = []
    used = 0
    for char in text:
        piece = _escaped(char, quotes)
        used += len(piece)
        if used > limit:
            return "".join(out), True
        out.append(piece)
    return "".join(out), False


def quoted(text: str, limit: int = VALUE_CHARS) -> str:
    """``text`` as Go's ``%q`` writes it, at most ``limit`` characters between the quotes."""
    shown, cut = _bounded(text, limit, quotes=True)
    return f'"{shown}"... ({len(text)} characters)' if cut else f'"{shown}"'


def message(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A message that may quote a claim (a CEL engine's error): escaped as above but not quoted, bounded."""
    shown, cut = _bounded(text, limit, quotes=False)
    return f"{shown}... ({len(text)} characters)" if cut else shown


def _number(value: int | float) -> str:
    text = str(value) if isinstance(value, int) else repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text.lstrip('-'))} digits)"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _claim(value: Any, depth: int) -> str:
    if isinstance(value, str):
        return quoted(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, list):
        if depth >= _DEPTH:
            return f"[...{_count(len(value), 'item')}]" if value else "[]"
        items = [_claim(item, depth + 1) for item in value[:LIST_ITEMS]]
        more = len(value) - LIST_ITEMS
        return "[" + " ".join(items) + (f" ...{more} more" if more > 0 else "") + "]"
    if isinstance(value, dict):
        if depth >= _DEPTH:
            return f"{{...{_count(len(value), 'key')}}}" if value else "{}"
        pairs = [f"{quoted(str(k))}:{_claim(v, depth + 1)}" for k, v in list(value.items())[:LIST_ITEMS]]
        more = len(value) - LIST_ITEMS
        return "{" + " ".join(pairs) + (f" ...{more} more" if more > 0 else "") + "}"
    return f"<{type(value).__name__}>"  # a claim is JSON: nothing else reaches here


def claim(value: Any) -> str:
    """A claim's value: strings quoted, numbers, true/false/null, lists as Go's ``%q`` writes a ``[]string``
    (``["a" "b"]``), objects as ``{"k":v}``; bounded in items, depth and length."""
    text = _claim(value, 0)
    return text if len(text) <= CLAIM_CHARS else text[:CLAIM_CHARS] + f"... ({len(text)} characters)"


def listed(values: Iterable[str]) -> str:
    """Configured or loaded names (issuers, audiences, key ids) as ``["a" "b"]``, bounded as a claim."""
    return claim(list(values))
