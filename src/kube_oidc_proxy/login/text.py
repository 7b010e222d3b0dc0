"""Text from outside (an IdP's ``error`` and ``error_description``, a refusal's reason quoting claims) made
fit for a page and a log line: one printable line, bounded. Pages escape it as well (Jinja2 autoescape);
this keeps control characters and CR/LF out of the logs and a megabyte of text off the page.
"""

from __future__ import annotations

from typing import Final

MAX_TEXT: Final = 300  # oidcclient's bound for an IdP's error text


def one_line(value: str, limit: int = MAX_TEXT) -> str:
    text = "".join(c if c.isprintable() else "?" for c in value[: limit + 1])
    return text[:limit] + ("…" if len(text) > limit else "")
