"""One call per key at a time: a caller asking for a key whose answer is already being fetched waits for
that call instead of making its own (a flood of one request to review costs one review).

The call runs in its own task, so a caller that leaves (its client went away) does not cancel it for the
others; its answer or error reaches every caller waiting then, and nobody after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._calls: dict[K, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, key: K) -> bool:
        """Whether a call for ``key`` is under way (a ``run`` now would join it)."""
        return key in self._calls

    async def run(self, key: K, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The answer for ``key``, and whether this caller made the call (False: it joined one under way)."""
        task = self._calls.get(key)
        if task is not None:
            return await asyncio.shield(task), False

        async def run_call() -> T:
            return await call()

        task = asyncio.ensure_future(run_call())
        self._calls[key] = task
        task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task), True

    def _settled(self, key: K, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have left before it ended
