"""Port numbers for listeners that other processes open (the proxy, kube-apiserver, etcd, Keycloak,
kubectl port-forward), and for addresses where nothing must listen.

Binding port 0, reading the number and closing the socket lets the kernel give the same number again
before the child binds it: to a second listener of the same test (this flaked CI once in
test_readiness_follows_the_issuer) or to anything else on the machine. Here a number stays bound by the
test process until the holder is closed, at the end of the test (or of the cluster):

- each socket sets SO_REUSEADDR and never listens, so the child told to listen on the number can
  (Linux lets one listener join bound, non-listening sockets that all set SO_REUSEADDR; Go's
  ``net.Listen``, asyncio, uvloop and Java servers set it), while no other ``bind(port 0)`` gets it;
- while nobody listens, a connection to the number is refused: what a test wants of a closed port.
"""

from __future__ import annotations

import socket
from types import TracebackType


class PortHolder:
    """Hands out distinct port numbers and holds each until ``close``."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def take(self) -> int:
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("0.0.0.0", 0))  # all addresses: the number is reserved whichever one a child binds
        self._held.append(held)
        return int(held.getsockname()[1])

    def close(self) -> None:
        for held in self._held:
            held.close()
        self._held.clear()

    def __enter__(self) -> PortHolder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
