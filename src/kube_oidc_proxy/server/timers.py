"""A client connection's one timer: idle between requests, or a request head that must complete in time.

kube-apiserver's values (k8s.io/apiserver secure_serving.go): IdleTimeout 90 s, ReadHeaderTimeout 32 s.
Responses and tunnels have no timeout: watches and exec sessions may be quiet for hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

IDLE_TIMEOUT_SECONDS: Final = 90.0
HEADER_TIMEOUT_SECONDS: Final = 32.0


class ConnectionTimer:
    __slots__ = ("_handle", "_on_timeout", "head_armed")

    def __init__(self, on_timeout: Callable[[], None]) -> None:
        self._on_timeout = on_timeout
        self._handle: asyncio.TimerHandle | None = None
        self.head_armed = False  # running for a request head that has started

    def idle(self) -> None:
        self.head_armed = False
        self.arm(IDLE_TIMEOUT_SECONDS)

    def head(self) -> None:
        """A request head started: it must complete in time (slowloris). Armed once per head."""
        if not self.head_armed:
            self.arm(HEADER_TIMEOUT_SECONDS)
            self.head_armed = True

    def head_read(self) -> None:
        """The request head is complete: no timer until the connection is idle again."""
        self.cancel()
        self.head_armed = False

    def arm(self, seconds: float) -> None:
        self.cancel()
        self._handle = asyncio.get_running_loop().call_later(seconds, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._on_timeout()
