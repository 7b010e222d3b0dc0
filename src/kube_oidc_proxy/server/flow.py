"""Flow control: one side's reading is paused while any named reason holds (uvicorn's ``FlowControl``, with
the reasons named so that one cannot resume what another paused).

A client connection has one: its request bodies pause it (a body ahead of kube-apiserver), and so do its
own reasons (pipelined requests waiting, an upgrade being set up, a full tunnel, a client that does not
read). The response direction of an exchange has a single reason (the client is not taking what it is
sent), so the relay keeps a flag instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

PauseReason = Literal[
    "body",  # a request body is buffered past its high-water mark
    "pipeline",  # requests wait behind the one being answered
    "upgrade",  # an upgrade request is being answered: what follows belongs to its tunnel
    "tunnel",  # kube-apiserver's side of a tunnel is full
    "client-full",  # the client is not reading what it is sent
]


class FlowControl:
    __slots__ = ("_pause", "_reasons", "_resume")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._pause = pause
        self._resume = resume
        # A tuple, not a set: the empty one is shared, and an idle watch holds two of these (~200 bytes each
        # as an empty set).
        self._reasons: tuple[PauseReason, ...] = ()

    @property
    def paused(self) -> bool:
        return bool(self._reasons)

    def pause(self, reason: PauseReason) -> None:
        if not self._reasons:
            self._pause()
        if reason not in self._reasons:
            self._reasons = (*self._reasons, reason)

    def resume(self, reason: PauseReason) -> None:
        if reason in self._reasons:
            self._reasons = tuple(held for held in self._reasons if held != reason)
            if not self._reasons:
                self._resume()

    def holds(self, reason: PauseReason) -> bool:
        return reason in self._reasons
