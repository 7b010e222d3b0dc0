"""Kubernetes ``Status`` error bodies: the one shape every rejection takes.

kubectl and client-go decode these and print ``message`` (and use ``reason`` for 401/403 wording), so a
client sees "Error from server (Forbidden): ..." rather than an opaque body. Messages are JSON-escaped
here; callers must never put a credential in them.
"""

from __future__ import annotations

import json
from typing import Final

# Reasons from k8s.io/apimachinery/pkg/apis/meta/v1 StatusReason, chosen by status code.
REASONS: Final[dict[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "Timeout",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    431: "RequestHeaderFieldsTooLarge",
    500: "InternalError",
    501: "BadRequest",  # a transfer coding we do not support: the request is what is wrong
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
    505: "BadRequest",
}

# Reflected text (a username, a header name) is cut so a hostile value cannot bloat the error body.
MAX_MESSAGE_CHARS: Final = 512


def status_body(code: int, message: str) -> bytes:
    """The JSON body of a failed ``Status`` for ``code``."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": REASONS.get(code, "InternalError"),
            "code": code,
        },
        separators=(",", ":"),
    ).encode()
