"""kube-apiserver's error texts: k8s.io/apimachinery ``field.Error`` lines and the Go renderings of the
values in them (``%q`` for strings, ``json.Marshal`` for named types and structs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final


class AuthConfigError(ValueError):
    """The file is not a valid AuthenticationConfiguration; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


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
