"""JSON text as Go's encoding/json reads it, where Python's readers refuse it or read it otherwise.

Go's decoder takes a string with bytes that are not UTF-8, each read as U+FFFD, and reads an escaped lone
surrogate (``"\\ud800"``) as U+FFFD too; orjson refuses both, and Python's json keeps the lone surrogate,
which no UTF-8 writer can then write. kube-apiserver decodes request bodies Go's way, so the proxy's record
of a body (the audit ``requestObject``) must too, or a body kube-apiserver acted on goes unrecorded.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, Final

import orjson

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # after json.loads, a pair is one character


def _each_byte_replaced(error: UnicodeError) -> tuple[str, int]:
    """Go's rule (utf8.DecodeRune): every byte of an invalid sequence is one U+FFFD."""
    assert isinstance(error, UnicodeDecodeError)
    return "\ufffd" * (error.end - error.start), error.end


codecs.register_error("kube-oidc-proxy-go", _each_byte_replaced)


def _text(value: str) -> str:
    return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)


def _go_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_go_strings(item) for item in value]
    if isinstance(value, dict):
        return {_text(key): _go_strings(item) for key, item in value.items()}
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; Go's does not


def loads(data: bytes | bytearray) -> Any:
    """The document Go would decode from ``data``; raises ``ValueError`` where Go's decoder fails too (or
    the document is nested deeper than Python reads)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # not JSON at all, or text orjson refuses and Go reads: read it again, Go's way
    try:
        text = bytes(data).decode("utf-8", "kube-oidc-proxy-go")
        return _go_strings(json.loads(text, parse_constant=_no_constant))
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
