"""The login's responses and the headers every one of them carries.

Every response: a CSP that allows no script, no inline style and no framing (``style-src 'self'`` for
``/login/style.css``), ``X-Frame-Options: DENY`` for browsers without CSP, ``nosniff``, no Referer (the
callback's URL holds a code) and ``no-store`` (a page may show who signed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kube_oidc_proxy.http1.headers import Headers

CSP: Final = (
    b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final[Headers] = [
    (b"Content-Security-Policy", CSP),
    (b"X-Frame-Options", b"DENY"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
    (b"Cache-Control", b"no-store"),
]
HTML: Final = b"text/html; charset=utf-8"
CSS: Final = b"text/css; charset=utf-8"
YAML: Final = b"application/yaml; charset=utf-8"


@dataclass(frozen=True, slots=True)
class LoginResponse:
    status: int
    headers: Headers  # complete: Content-Type, Content-Length and the security headers included
    body: bytes
    refusal: str = ""  # why the request was refused (for the AuFail line and the log); "" when it was not


def response(status: int, body: bytes, content_type: bytes = HTML, extra: Headers | None = None) -> LoginResponse:
    headers: Headers = [
        (b"Content-Type", content_type),
        (b"Content-Length", b"%d" % len(body)),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    return LoginResponse(status, headers, body)


def refusal(status: int, body: bytes, reason: str, extra: Headers | None = None) -> LoginResponse:
    answer = response(status, body, extra=extra)
    return LoginResponse(answer.status, answer.headers, answer.body, reason)
