"""Streams for log writers: one that stalls like a stdout nobody reads, until the test lets it go."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

# Guard timeouts only: every wait below ends as soon as its event happens.
GUARD_SECONDS: Final = 10.0


class GatedStream:
    """``write()`` waits at a gate: ``shut()`` stops every write, ``allow(n)`` lets n more through, ``open()``
    all of them. ``entered`` is set when a write begins, so a test knows the writer thread is inside
    ``write()``, and ``flushed`` after a flush; ``refuse`` makes the next writes raise, as a closed pipe does."""

    def __init__(self, *, shut: bool = False) -> None:
        self._permits: int | None = 0 if shut else None  # None: open
        self._changed = threading.Condition()
        self._written: list[str] = []
        self.entered = threading.Event()
        self.flushed = threading.Event()
        self.refuse = 0

    def shut(self) -> None:
        self.allow(0)

    def allow(self, writes: int) -> None:
        with self._changed:
            self._permits = writes
            self._changed.notify_all()

    def open(self) -> None:
        with self._changed:
            self._permits = None
            self._changed.notify_all()

    def write(self, text: str, /) -> int:
        self.entered.set()
        with self._changed:
            if not self._changed.wait_for(lambda: self._permits != 0, GUARD_SECONDS):
                raise AssertionError("the test never let this write through")
            if self._permits is not None:
                self._permits -= 1
            if self.refuse:
                self.refuse -= 1
                self._changed.notify_all()
                raise BrokenPipeError("stdout went away")
            self._written.append(text)
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        self.flushed.set()

    def lines(self) -> list[str]:
        with self._changed:
            return "".join(self._written).splitlines()

    def wait_for(self, done: Callable[[list[str]], bool]) -> list[str]:
        """The lines written so far, once ``done(lines)`` holds."""
        with self._changed:
            lines: list[str] = []

            def written() -> bool:
                lines[:] = "".join(self._written).splitlines()
                return done(lines)

            assert self._changed.wait_for(written, GUARD_SECONDS), self._written
            return lines


class Counted:
    """Stands in for the dropped-lines counter: adds up what it is called with."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, count: int) -> None:
        self.total += count
