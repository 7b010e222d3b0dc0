"""Timestamps as Kubernetes writes them (RFC 3339, UTC, microseconds), cheaply: audit events carry two each
and JSON access lines one, on the request path."""

from __future__ import annotations

import datetime
import functools
import math


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def timestamp(unix: float) -> str:
    """RFC 3339 in UTC with microseconds; the date and time part is formatted once per second."""
    fraction, whole = math.modf(unix)  # rounded as datetime.fromtimestamp rounds
    second, micros = int(whole), round(fraction * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_second(second)}.{micros:06d}Z"
