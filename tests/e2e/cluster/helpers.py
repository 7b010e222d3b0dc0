"""Go programs the end-to-end tests run as clients, built in the cluster's module (``k8s/``) so they link
exactly the k8s.io modules kube-apiserver is built from, and cached next to the cluster's binaries, keyed
by the hash of the module files and their source. Built on first use (seconds once kube-apiserver's build
has filled Go's build cache).

Kept out of ``build.py``: Keycloak's prepared distribution is keyed by that file's hash.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.cluster.build import HERE, _digest, _go, cache_root, say


def _program(name: str, what: str) -> Path:
    module = HERE / "k8s"
    binary = cache_root() / f"{name}-{_digest(module / 'go.mod', module / 'go.sum', module / name / 'main.go')}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.partial")
    started = time.monotonic()
    say(f"building {what}")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), f"./{name}"], module)
    partial.rename(binary)  # whole or not at all
    say(f"built {what} in {time.monotonic() - started:.0f}s")
    return binary


def informers() -> Path:
    """A client-go controller in miniature (``k8s/informers/main.go``): dynamic informers for the namespaced
    resources on one HTTP client, reporting the TCP connections it dialled and the HTTP versions it spoke."""
    return _program("informers", "the client-go informers helper")
