"""What a Kubernetes request is about, from its method and target alone (no IO): kube-apiserver's
RequestInfo (k8s.io/apiserver pkg/endpoints/request/requestinfo.go), for audit events and metrics.

Resource requests are ``/api/<version>/...`` and ``/apis/<group>/<version>/...``, optionally under
``namespaces/<ns>/``, then ``<resource>[/<name>[/<subresource>]]``; the legacy ``/watch/`` segment makes a
watch. The verb follows from the method: GET is get, list (no name) or watch (``?watch=true``), POST create,
PUT update, PATCH patch, DELETE delete or deletecollection (no name). Anything else is a non-resource
request whose verb is the lower-cased method.

Long-running requests are the ones kube-apiserver keeps open: watches and followed logs (the proxy
multiplexes them over HTTP/2 and ends them cleanly on shutdown). Exec, attach and port-forward are
upgrades, handled apart.
"""

from __future__ import annotations

from typing import Final, NamedTuple
from urllib.parse import parse_qsl, unquote

_TRUE: Final = frozenset({b"true", b"1"})
API_PREFIXES: Final = frozenset({"api", "apis"})
_VERBS: Final = {"POST": "create", "PUT": "update", "PATCH": "patch", "GET": "get", "HEAD": "get", "DELETE": "delete"}
# A namespace's own subresources (namespaces/<ns>/status), not a namespaced resource called "status".
_NAMESPACE_SUBRESOURCES: Final = frozenset({"status", "finalize"})


class RequestInfo(NamedTuple):  # a tuple: built for every audited or metered request, so cheaply
    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def is_long_running(method: bytes, target: bytes) -> bool:
    if method != b"GET":
        return False
    path, _, query = target.partition(b"?")
    if b"/watch/" in path:
        return True
    if not query:
        return False
    for param in query.split(b"&"):
        name, _, value = param.partition(b"=")
        if name == b"watch" and value in _TRUE:
            return True
        if name == b"follow" and value in _TRUE and path.endswith(b"/log"):
            return True
    return False


def request_info(method: str, target: str) -> RequestInfo:
    path, _, query = target.partition("?")
    non_resource = RequestInfo(False, path, method.lower())
    trimmed = path.strip("/")
    parts = trimmed.split("/") if trimmed else []
    if "%" in trimmed:
        parts = [unquote(p) for p in parts]
    if len(parts) < 2 or parts[0] not in API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 2:
            return non_resource  # /apis/<group>: discovery
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if not parts:
        return non_resource  # /api/v1, /apis/apps/v1: discovery

    verb = _VERBS.get(method.upper(), method.lower())
    if parts[0] == "watch":
        verb = "watch" if method.upper() == "GET" else verb
        parts = parts[1:]

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        # namespaces/<ns> and namespaces/<ns>/status are about the namespace itself
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0] if parts else ""
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 else ""

    params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if not name:
        if verb == "get":
            verb = "watch" if params.get("watch", "").lower() in ("true", "1") else "list"
        elif verb == "delete":
            verb = "deletecollection"
        if verb in ("list", "watch"):
            # kube-apiserver takes the name of a single-object list or watch from metadata.name=
            for selector in params.get("fieldSelector", "").split(","):
                key, sep, value = selector.partition("=")
                if sep and key.strip() == "metadata.name":
                    name = value.lstrip("=").strip()
    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource, subresource, name)
