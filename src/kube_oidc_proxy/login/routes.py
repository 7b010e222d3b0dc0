"""Which requests are the login's, and what they ask: exact paths, GET and HEAD only, query parameters read
strictly.

The login owns ``/login`` and everything under ``/login/``, nothing else: ``/api``, ``/apis``, ``/version``,
``/openapi`` and every other path go to kube-apiserver as before. Under ``/login/`` only the four routes
exist; anything else is a 404 page. Parameters the routes do not use (``redirect``, ``next``, ``return_to``
and the like) are ignored: no parameter ever chooses where the browser goes next.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs

MAX_FIELDS: Final = 16  # a callback carries code, state, maybe session_state, iss, scope, error, error_description
MAX_QUERY: Final = 16 * 1024  # an authorization code is short; 16 KiB is plenty


class Route(enum.Enum):
    START = "/login"
    CALLBACK = "/login/callback"
    KUBECONFIG = "/login/kubeconfig"
    STYLE = "/login/style.css"
    NOT_FOUND = ""


_ROUTES: Final = {route.value.encode(): route for route in Route if route.value}
ALLOWED_METHODS: Final = (b"GET", b"HEAD")


def is_login_path(target: bytes) -> bool:
    path = target.partition(b"?")[0]
    return path == b"/login" or path.startswith(b"/login/")


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """What the login reads of a request; the exchange empties the request's headers once this is made."""

    method: bytes
    target: bytes
    host: bytes | None  # the Host header (HTTP/2: :authority); None when absent or given twice
    cookies: tuple[bytes, ...]  # the Cookie headers' values (HTTP/2 may split them): cookies.login_cookie
    client_ip: str  # after --trusted-proxy-cidrs


class BadQuery(ValueError):
    """The query cannot be read unambiguously (too long, too many fields, a parameter given twice)."""


@dataclass(frozen=True, slots=True)
class Parsed:
    route: Route
    path: bytes  # for the access log: never the query, which carries codes and states
    query: dict[str, str]


def parse_target(target: bytes) -> Parsed:
    """The route and its parameters; ``BadQuery`` when the query is not plain."""
    path, _, raw = target.partition(b"?")
    route = _ROUTES.get(path, Route.NOT_FOUND)
    if len(raw) > MAX_QUERY:
        raise BadQuery("the query is too long")
    try:
        values = parse_qs(raw.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadQuery("the query cannot be read") from None
    query: dict[str, str] = {}
    for name, given in values.items():
        if len(given) != 1:
            raise BadQuery("a parameter is given more than once")
        query[name] = given[0]
    return Parsed(route, path, query)
