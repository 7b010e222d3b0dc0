"""What kind of Kubernetes request this is, from the request line alone (no IO).

Long-running requests are the ones kube-apiserver keeps open: watches (``?watch=true|1`` or the legacy
``/watch/`` paths) and followed logs (``.../log?follow=true``). The proxy multiplexes them over HTTP/2 and
ends them cleanly on shutdown. Exec, attach and port-forward are upgrades, handled apart.
"""

from __future__ import annotations

from typing import Final

_TRUE: Final = frozenset({b"true", b"1"})


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
