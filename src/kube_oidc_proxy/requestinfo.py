"""What a Kubernetes request is about, from its method and target alone (no IO): kube-apiserver's
RequestInfo (k8s.io/apiserver pkg/endpoints/request/requestinfo.go), computed exactly as kube-apiserver
computes it, for audit policy, audit events and metrics. An audit rule is only as good as this agreement:
a request that kube-apiserver reads as one thing and the proxy as another escapes the rule written for it.

kube-apiserver reads the target with Go's net/url first. The path is %-decoded before it is split on "/"
(``roles%2Fname`` is two segments, ``%2e%2e`` is ``..``, and neither is cleaned away); of a repeated query
parameter only the first value counts (``watch=false&watch=true`` is a list); a parameter pair with a ``;``
or a bad %-escape is dropped, and a query of more than 10000 parameters has none.

Then ``/api/<version>/...`` and ``/apis/<group>/<version>/...`` with at least one more segment are resource
requests. ``watch`` or ``proxy`` right after the version is the verb; ``namespaces/<ns>/`` scopes what
follows unless it is the namespace's own ``status`` or ``finalize``; then
``<resource>[/<name>[/<subresource>]]`` (a proxy has no subresource). Otherwise the verb follows from the
method: GET and HEAD get, POST create, PUT update, PATCH patch, DELETE delete, any other method none. A get
without a name is a list, or a watch when the list options say ``watch`` (``listoptions.py``: any value
but ``0`` and ``false``), and its ``fieldSelector`` may name the object; a delete without a name is a
deletecollection. Everything else is a non-resource request whose verb is the lower-cased method.

Text is Go's: a byte that is not part of a UTF-8 character is U+FFFD, as in kube-apiserver's JSON.

Long-running requests (``is_long_running``) are the streams the proxy multiplexes over HTTP/2 and ends at
a chunk boundary on shutdown: a watch, as kube-apiserver's verb says, and a followed pod log. kube-apiserver
also counts every log, proxy, exec, attach and port-forward as long-running (no request timeout); of those,
exec, attach and port-forward are upgrades here, handled apart, and the others may be ordinary responses
that must never be cut short looking complete.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple
from urllib.parse import unquote_to_bytes

from kube_oidc_proxy.listoptions import list_options, query_bool

_VERBS: Final = {"POST": "create", "PUT": "update", "PATCH": "patch", "GET": "get", "HEAD": "get", "DELETE": "delete"}
_SPECIAL_VERBS: Final = frozenset({"proxy", "watch"})
# A namespace's own subresources (namespaces/<ns>/status), not a namespaced resource called "status".
_NAMESPACE_SUBRESOURCES: Final = frozenset({"status", "finalize"})
_VERBS_WITH_SELECTORS: Final = frozenset({"list", "watch", "deletecollection"})
# Go's url.ParseQuery (since Go 1.26): a query with more parameters than this has none at all.
_MAX_QUERY_PARAMETERS: Final = 10000
_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_LONE_SURROGATE: Final = re.compile("[\udc80-\udcff]")
_ALNUM: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Go's URL.RequestURI: a path made only of these is sent as it came (validEncoded) ...
_VALID_ENCODED: Final = _ALNUM + b"-_.~$&+,/:;=@!'()*[]%"
# ... else the decoded path is escaped, every byte but these as %XX (escape(path, encodePath)).
_PATH_UNESCAPED: Final = frozenset(_ALNUM + b"-_.~$&+,/:;=@")


class RequestInfo(NamedTuple):  # a tuple: built for every audited or metered request, so cheaply
    is_resource_request: bool
    path: str  # %-decoded, as kube-apiserver matches nonResourceURLs against it
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    field_selector: str = ""  # the raw first value, for a list, watch or deletecollection
    label_selector: str = ""


_new_info: Final = tuple.__new__


def request_info(method: str | bytes, target: str | bytes) -> RequestInfo:
    """kube-apiserver's RequestInfo. ``target``: the request target's bytes (or its text, as UTF-8).

    Where kube-apiserver's resolver fails (``/api/v1/watch`` and ``/api/v1/proxy`` with nothing after them;
    it answers 500 and audits nothing), this is the partial info it had, as it has it."""
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if isinstance(target, str):
        target = target.encode("utf-8", "surrogateescape")
    raw_path, _, query = target.partition(b"?")
    if b"%" in raw_path:
        path = go_text(unquote_to_bytes(raw_path))
    elif raw_path.isascii():
        path = raw_path.decode("ascii")  # the usual path: nothing to decode or replace
    else:
        path = go_text(raw_path)
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, method.lower())
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":  # only "api" is groupless
        if len(rest) < 3:
            return RequestInfo(False, path, method.lower(), prefix)  # /apis/<group>/<version>: discovery
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    verb_in_path = rest[0] in _SPECIAL_VERBS
    if verb_in_path:
        if len(rest) < 2:
            return RequestInfo(True, path, method.lower(), prefix, group, version)
        verb, rest = rest[0], rest[1:]
    else:
        verb = _VERBS.get(method, "")

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""

    first: dict[str, str] | None = None
    if not name and verb == "get":
        first = first_query_values(query)
        options = list_options(first)
        verb = "watch" if options.watch else "list"
        name = options.name
    if not name and verb == "delete":
        verb = "deletecollection"
    field_selector = label_selector = ""
    if query and not verb_in_path and verb in _VERBS_WITH_SELECTORS:
        if first is None:
            first = first_query_values(query)
        field_selector = first.get("fieldSelector", "")
        label_selector = first.get("labelSelector", "")
    # tuple.__new__ directly, and _go_clean's ASCII test inline: each Python call saved here is saved for
    # every audited or metered request
    return _new_info(
        RequestInfo,
        (
            True,
            path,
            verb,
            prefix,
            group,
            version,
            namespace,
            resource,
            subresource,
            name if name.isascii() else _go_clean(name),
            field_selector if field_selector.isascii() else _go_clean(field_selector),
            label_selector if label_selector.isascii() else _go_clean(label_selector),
        ),
    )


def is_long_running(method: bytes, target: bytes) -> bool:
    """A watch or a followed pod log, as kube-apiserver reads the request."""
    if method != b"GET":
        return False
    # The usual request is decided without parsing it: no segment or parameter can be "watch" or "follow"
    # if the target has neither, also once decoded.
    spelled = target if b"%" not in target else unquote_to_bytes(target)
    if b"watch" not in spelled and b"follow" not in spelled:
        return False
    info = request_info(method, target)
    if info.verb == "watch":
        return True
    if info.resource != "pods" or info.subresource != "log" or info.verb != "get":
        return False
    follow = first_query_values(target.partition(b"?")[2]).get("follow")  # PodLogOptions.Follow
    return follow is not None and query_bool(follow)


def request_uri(target: bytes) -> str:
    """The requestURI kube-apiserver's audit events record for this target (Go's ``URL.RequestURI()``)."""
    path, question, query = target.partition(b"?")
    if path.translate(None, _VALID_ENCODED):  # a byte Go would not send as it is
        path = "".join(chr(b) if b in _PATH_UNESCAPED else f"%{b:02X}" for b in unquote_to_bytes(path)).encode()
    elif path and target.isascii():
        return target.decode("ascii")  # the usual target: sent as it came
    return go_text(path or b"/") + question.decode() + go_text(query)


def path_escape_error(target: bytes) -> str | None:
    """Why Go's HTTP server refuses this target with 400 before any handler sees it (a bad %-escape in the
    path: url.ParseRequestURI), or None. Escapes in the query are not checked there: a bad pair is dropped."""
    path = target.partition(b"?")[0]
    if b"%" not in path:
        return None
    bad = _BAD_ESCAPE.search(path)
    return None if bad is None else f"invalid URL escape {path[bad.start() : bad.start() + 3].decode('latin-1')!r}"


def first_query_values(query: bytes) -> dict[str, str]:
    """Go's ``url.ParseQuery``, the first value of each parameter: pairs split on ``&``; a pair with a ``;``
    or a bad %-escape is dropped; ``+`` is a space. Text with bytes that are not UTF-8 kept as lone
    surrogates (``listoptions`` compares them as Go does, as bytes)."""
    first: dict[str, str] = {}
    if not query or query.count(b"&") >= _MAX_QUERY_PARAMETERS:
        return first
    if query.isascii() and b"%" not in query and b"+" not in query and b";" not in query:
        for text in query.decode("ascii").split("&"):  # the usual query: nothing to decode or drop
            if text:
                name, _, text_value = text.partition("=")
                first.setdefault(name, text_value)
        return first
    for pair in query.split(b"&"):
        if not pair or b";" in pair:
            continue
        raw_key, _, raw_value = pair.partition(b"=")
        key, value = _query_unescape(raw_key), _query_unescape(raw_value)
        if key is not None and value is not None:
            first.setdefault(key.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
    return first


def _query_unescape(data: bytes) -> bytes | None:
    if b"+" in data:
        data = data.replace(b"+", b" ")
    if b"%" not in data:
        return data
    if _BAD_ESCAPE.search(data):
        return None
    return unquote_to_bytes(data)


def go_text(data: bytes) -> str:
    """Bytes as Go's encoding/json writes a string: UTF-8, and U+FFFD for each byte that is not part of a
    character."""
    if data.isascii():
        return data.decode("ascii")
    return _go_clean(data.decode("utf-8", "surrogateescape"))


def _go_clean(text: str) -> str:
    """Lone surrogates (``surrogateescape``) as U+FFFD, one per byte, as in Go's JSON."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)
