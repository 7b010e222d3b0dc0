"""The request direction of an exchange: the client's body on its way to kube-apiserver.

The client's bytes are buffered up to ``HIGH_WATER``; past it the client side is paused (reason ``body``)
until kube-apiserver's connection has taken enough of them. A client that stops sending for
``IDLE_TIMEOUT_SECONDS`` is treated as gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from kube_oidc_proxy.server.contracts import ClientGone, ClientSide

# Buffer at most this much of a request body before we stop reading the client (uvicorn's figure).
HIGH_WATER: Final = 64 * 1024
# A client that stops sending its request body for this long is cut off.
IDLE_TIMEOUT_SECONDS: Final = 60.0


class RequestBody:
    __slots__ = ("_buffered", "_chunks", "_client", "_waiter", "done", "sent")

    def __init__(self, client: ClientSide, *, done: bool) -> None:
        self._client = client
        self._chunks: deque[bytes] | None = None  # made by the first piece: most requests have no body
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self.done = done  # every byte of it was read from the client
        self.sent = done  # every byte of it went upstream: only then may its connection be reused

    # from the client side

    def receive(self, data: bytes) -> None:
        if self._chunks is None:
            self._chunks = deque()
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._client.pause_reading("body")
        self._wake(None)

    def complete(self) -> None:
        self.done = True
        self._wake(None)

    def client_lost(self) -> None:
        self._wake(ClientGone())

    # for the exchange

    async def next(self) -> bytes | None:
        """The next piece of the body, or None once it is all taken; ClientGone when the client left or
        went quiet for too long."""
        while not self._chunks:
            if self.done:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, IDLE_TIMEOUT_SECONDS)
            except TimeoutError:
                raise ClientGone from None
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered <= HIGH_WATER:
            self._client.resume_reading("body")
        return data

    def _wake(self, error: ClientGone | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
