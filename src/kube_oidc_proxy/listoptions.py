"""kube-apiserver's list options, as far as a request's RequestInfo depends on them (pure).

For a GET without a name, kube-apiserver decodes the query into ListOptions (k8s.io/apimachinery
``metainternalversionscheme.ParameterCodec``, the first value of each parameter) to tell a list from a
watch and to take the object's name from ``fieldSelector=metadata.name=<name>``. When that decoding fails
(a label or field selector it cannot parse, a ``limit`` or ``timeoutSeconds`` that is not an int64), it
reads ``watch`` alone, a little differently, and takes no name; the request itself then fails with 400.
So the grammar of both selectors is here, exactly as strict as Go's (k8s.io/apimachinery pkg/labels and
pkg/fields, ``runtime.Convert_Slice_string_To_bool``, ``strconv.ParseInt``).

Values are the query's text with bytes that are not UTF-8 kept as lone surrogates (``surrogateescape``):
Go compares and sorts them as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

# k8s.io/apimachinery pkg/api/validate/content: label keys (qualified names) and values, DNS subdomains.
_LABEL_NAME: Final = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE: Final = re.compile(r"(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_INT64: Final = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, 64): no spaces, no underscores
# The integer options of ListOptions (the others are strings and booleans, which always decode).
_INTEGER_OPTIONS: Final = ("limit", "timeoutSeconds")


class ListOptions(NamedTuple):
    watch: bool
    name: str  # the object a list or watch is about (fieldSelector metadata.name=...), or ""


def list_options(first: Mapping[str, str]) -> ListOptions:
    """What RequestInfo takes from a GET's query without a name in the path; ``first``: each parameter's
    first value."""
    value = first.get("watch")
    watch = value is not None and query_bool(value)
    # kube-apiserver's fallback reads "watch" with strings.ToLower, not EqualFold: "fal\u017fe" is a watch there
    fallback_watch = value is not None and value.lower() not in ("false", "0")
    selector = first.get("fieldSelector")
    if not selector and watch == fallback_watch:
        return ListOptions(watch, "")  # whether the options decode changes nothing: do not parse them
    name = _field_selector_name(selector) if selector else ""
    if name is None or not _decodes(first):
        return ListOptions(fallback_watch, "")
    if name in (".", "..") or "/" in name or "%" in name:  # content.IsPathSegmentName
        name = ""
    return ListOptions(watch, name)


def query_bool(value: str) -> bool:
    """A boolean option's first value as kube-apiserver decodes it (runtime.Convert_Slice_string_To_bool):
    anything but "0" and "false" (strings.EqualFold: in Unicode's simple case folding only the long s, U+017F,
    joins the ASCII letters of "false") is true, the empty value too."""
    return not (value == "0" or (len(value) == 5 and value.replace("\u017f", "s").lower() == "false"))


def _decodes(first: Mapping[str, str]) -> bool:
    """Everything but the field selector decodes (the caller parses that one)."""
    for option in _INTEGER_OPTIONS:
        value = first.get(option)
        if value is not None and not _is_int64(value):
            return False
    labels = first.get("labelSelector")
    return not labels or label_selector_parses(labels)


def _is_int64(text: str) -> bool:
    return _INT64.fullmatch(text) is not None and -(2**63) <= int(text) < 2**63


# -- fields.ParseSelector ------------------------------------------------------------------------------


def _field_selector_name(selector: str) -> str | None:
    """The value a field selector requires of ``metadata.name`` ("" when it requires none), or None when
    kube-apiserver cannot parse it. Go sorts the terms (as bytes) and the first ``=`` or ``==`` term on
    metadata.name wins."""
    terms = _split_terms(selector)
    if len(terms) > 1:
        terms.sort(key=lambda t: t.encode("utf-8", "surrogateescape"))
    found: str | None = None
    for term in terms:
        if not term:
            continue
        # The first operator in the term splits it: "!=", "==" or "=" (no escaping on the left).
        at = term.find("=")
        if at < 0:
            return None
        if at > 0 and term[at - 1] == "!":
            field, op, value = term[: at - 1], "!=", term[at + 1 :]
        elif term.startswith("=", at + 1):
            field, op, value = term[:at], "==", term[at + 2 :]
        else:
            field, op, value = term[:at], "=", term[at + 1 :]
        unescaped = _unescape_field_value(value)
        if unescaped is None:
            return None
        if found is None and op != "!=" and field == "metadata.name":
            found = unescaped
    return "" if found is None else found


def _split_terms(selector: str) -> list[str]:
    """Commas split terms unless escaped with a backslash (which stays in the term)."""
    if "\\" not in selector:
        return selector.split(",") if selector else []
    terms, start, escaped = [], 0, False
    for i, c in enumerate(selector):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _unescape_field_value(value: str) -> str | None:
    """fields.UnescapeValue: ``\\\\``, ``\\,`` and ``\\=`` are the only escapes; a bare ``,`` or ``=`` is an
    error."""
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out, escaped = [], False
    for c in value:
        if escaped:
            if c not in "\\,=":
                return None
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            return None
        else:
            out.append(c)
    return None if escaped else "".join(out)


# -- labels.Parse --------------------------------------------------------------------------------------

_ERROR, _END, _CLOSE, _COMMA, _NOT, _EQ2, _EQ, _GT, _ID, _IN, _LT, _NE, _NOTIN, _OPEN = range(14)
_SYMBOLS: Final = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _EQ2, "=": _EQ, ">": _GT, "<": _LT, "!=": _NE, "(": _OPEN}
_KEYWORDS: Final = {"in": _IN, "notin": _NOTIN}
_SPECIAL: Final = frozenset("=!(),><")
_SPACE: Final = frozenset(" \t\r\n")
_SET_OPERATORS: Final = frozenset({_IN, _NOTIN})
_EXACT_OPERATORS: Final = frozenset({_EQ, _EQ2, _NE, _GT, _LT})


def _lex(text: str) -> list[tuple[int, str]]:
    """labels.Lexer: tokens up to the end of the string, or up to a NUL where a token would start (Go reads
    a NUL byte as its end-of-input marker; inside a token it ends the token and is consumed)."""
    tokens: list[tuple[int, str]] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos] in _SPACE:
            pos += 1
        if pos >= n or text[pos] == "\0":
            tokens.append((_END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            # the longest of "!=" and "==" or a single symbol; a NUL right after one is consumed with it
            two = text[pos : pos + 2]
            if two in ("!=", "=="):
                tokens.append((_SYMBOLS[two], two))
                pos += 2
            else:
                tokens.append((_SYMBOLS[text[pos]], text[pos]))
                pos += 1
            if pos < n and text[pos] == "\0":
                pos += 1
            continue
        start = pos
        while pos < n and text[pos] != "\0" and text[pos] not in _SPECIAL and text[pos] not in _SPACE:
            pos += 1
        word = text[start:pos]
        if pos < n and text[pos] == "\0":
            pos += 1
        tokens.append((_KEYWORDS.get(word, _ID), word))


def label_selector_parses(text: str) -> bool:
    """labels.Parse succeeds: requirements ``[!]key [op value | in|notin (values)]`` separated by commas,
    keys and values valid as labels, a number after ``>`` and ``<``."""
    tokens = _lex(text)
    pos = 0

    def peek() -> int:  # in a value position "in" and "notin" are identifiers
        tok = tokens[pos][0]
        return _ID if tok in _SET_OPERATORS else tok

    while True:
        tok = peek()
        if tok == _END:
            return True
        if tok not in (_ID, _NOT):
            return False
        # the requirement: key and operator
        negated = tok == _NOT
        pos += 1
        if negated:
            if peek() != _ID:
                return False
            pos += 1
        key = tokens[pos - 1][1]
        if not _is_label_key(key):
            return False
        if not negated and peek() not in (_END, _COMMA):
            operator = tokens[pos][0]  # here "in" and "notin" are operators
            pos += 1
            if operator in _SET_OPERATORS:
                ok, pos, values = _set_values(tokens, pos)
            elif operator in _EXACT_OPERATORS:
                ok, pos, values = _exact_value(tokens, pos)
            else:
                return False
            if not ok or not all(len(v) <= 63 and _LABEL_VALUE.fullmatch(v) for v in values):
                return False
            if operator in (_GT, _LT) and not _is_int64(values[0]):
                return False
        # after the requirement: the end, or a comma and another requirement
        tok = peek()
        pos += 1
        if tok == _END:
            return True
        if tok != _COMMA or peek() not in (_ID, _NOT):
            return False


def _set_values(tokens: list[tuple[int, str]], pos: int) -> tuple[bool, int, list[str]]:
    """``(a,b,,c)``: possibly empty values between commas; ``()`` is the one value ""."""

    def kind(at: int) -> int:
        tok = tokens[at][0]
        return _ID if tok in _SET_OPERATORS else tok

    if kind(pos) != _OPEN:
        return False, pos, []
    pos += 1
    if kind(pos) == _CLOSE:
        return True, pos + 1, [""]
    if kind(pos) not in (_ID, _COMMA):
        return False, pos, []
    values: list[str] = []
    while True:
        tok = kind(pos)
        pos += 1
        if tok == _ID:
            values.append(tokens[pos - 1][1])
            if kind(pos) == _CLOSE:
                return True, pos + 1, values
            if kind(pos) != _COMMA:
                return False, pos, []
        elif tok == _COMMA:
            if not values or kind(pos) in (_CLOSE, _COMMA):
                values.append("")
            if kind(pos) == _CLOSE:
                return True, pos + 1, values
        else:
            return False, pos, []


def _exact_value(tokens: list[tuple[int, str]], pos: int) -> tuple[bool, int, list[str]]:
    tok, word = tokens[pos]
    if tok in (_END, _COMMA):
        return True, pos, [""]
    if tok in (_ID, _IN, _NOTIN):
        return True, pos + 1, [word]
    return False, pos, []


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or "/" in prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and _LABEL_NAME.fullmatch(name) is not None
