"""Timestamps as Kubernetes writes them (RFC 3339, UTC, microseconds), cheaply: audit events carry two each
and JSON access lines one, on the request path."""

from __future__ import annotations

import datetime
import functools


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


_formats: list[tuple[int, str]] = [(-1, "")]  # the last second seen, as a format for its microseconds


def timestamp(unix: float) -> str:
    """RFC 3339 in UTC with microseconds; the date and time part is formatted once per second."""
    second = int(unix)
    micros = round((unix - second) * 1_000_000)  # the fraction exactly as math.modf gives it, rounded as datetime
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    last_second, text = _formats[0]
    if last_second != second:
        text = _second(second) + ".%06dZ"
        _formats[0] = (second, text)
    return text % micros
