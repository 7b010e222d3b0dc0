"""A bounded queue of log lines and the thread that writes them: a stalled stdout or stderr costs lines,
never memory and never the event loop.

Producers (the event loop for access lines, any thread for diagnostics) ``put`` items; a writer thread
wakes every ``WRITE_INTERVAL_SECONDS``, turns the queued items into text (``render``) and writes them in
chunks of at most ``chunk_lines`` lines, flushing after each chunk. Polling instead of being woken per
line keeps the writer from contending with the event loop for the GIL thousands of times a second
(measured: ~10 µs per request).

Bound: at most ``limit`` items wait in the queue, plus the one chunk being written. Beyond the bound a
new item is dropped and counted: the newest are dropped, so what is queued keeps its order. The count
is reported in the log itself, at the place of the gap: the first item queued once there is room again
is preceded by a ``Dropped`` marker (which ``dropped_line`` renders as, e.g., ``N access log lines
dropped``); if nothing follows, the writer adds the marker itself when it has emptied the queue. So the
log reads: the lines queued before the stall, one line saying how many are missing, the lines after.
A chunk the stream refuses (a closed pipe) is counted the same way and reported before the next chunk
that can be written.

Cost per item on the producer: a length check and a deque append (no lock) while nothing is waiting to
be reported; a lock and a call of ``on_dropped`` only while lines are being dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

WRITE_INTERVAL_SECONDS: Final = 0.05  # queued lines reach the stream within this long
# Lines per write(): bounds the text held in flight (~200 KiB of access lines) on top of the queue.
CHUNK_LINES: Final = 1024


class TextStream(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dropped:
    """Marks where lines are missing: ``count`` items were dropped just before this point."""

    count: int
    at: float  # wall-clock time the gap was closed


class LineQueue:
    def __init__(
        self,
        stream: TextStream,
        *,
        render: Callable[[object], str],
        dropped_line: Callable[[Dropped], str],
        limit: int,
        name: str,
        on_dropped: Callable[[int], None] | None = None,
        interval: float = WRITE_INTERVAL_SECONDS,
        chunk_lines: int = CHUNK_LINES,
    ) -> None:
        self.limit = limit
        self.on_dropped = on_dropped  # e.g. the Prometheus counter; called with the number of lines lost
        self._stream = stream
        self._render = render
        self._dropped_line = dropped_line
        self._interval = interval
        self._chunk_lines = chunk_lines
        self._items: deque[object] = deque()
        # Producers add to _dropped and markers catch _reported up with it, both under _lock; while the two
        # are equal (nothing to report) producers take no lock.
        self._lock = threading.Lock()
        self._dropped = 0
        self._reported = 0
        self._lost_in_writes = 0  # the writer's own: lines of chunks the stream refused, not yet reported
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def dropped(self) -> int:
        """Items refused because the queue was full, since the start."""
        return self._dropped

    def put(self, item: object) -> None:
        if self._dropped == self._reported and len(self._items) < self.limit:
            self._items.append(item)
            return
        with self._lock:
            pending = self._dropped - self._reported
            if len(self._items) + (2 if pending else 1) <= self.limit:  # the marker takes a place too
                if pending:
                    self._items.append(Dropped(pending, time.time()))
                    self._reported = self._dropped
                self._items.append(item)
                return
            self._dropped += 1
        if self.on_dropped is not None:
            self.on_dropped(1)

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued, then stop the writer (give up waiting after ``timeout``)."""
        self._stopping.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._write_queued()
        self._write_queued()

    def _write_queued(self) -> None:
        while True:
            chunk = self._take()
            if not chunk or not self._write(chunk):
                return  # nothing left, or the stream refused it: try again at the next interval

    def _take(self) -> list[object]:
        items = self._items
        chunk: list[object] = []
        if self._lost_in_writes:
            chunk.append(Dropped(self._lost_in_writes, time.time()))
        while items and len(chunk) < self._chunk_lines:
            chunk.append(items.popleft())  # the only consumer: a non-empty deque stays non-empty
        if not items and self._dropped != self._reported:
            with self._lock:  # lines were dropped and none has followed: the gap ends here
                if not items and self._dropped != self._reported:
                    chunk.append(Dropped(self._dropped - self._reported, time.time()))
                    self._reported = self._dropped
        return chunk

    def _write(self, chunk: list[object]) -> bool:
        lines: list[str] = []
        represented = 0  # log lines this chunk stands for: its own and those its markers report
        fresh = 0  # of those, the ones not counted as dropped yet
        for item in chunk:
            if not isinstance(item, Dropped):
                try:
                    lines.append(self._render(item))
                except Exception:  # a line that cannot be rendered is reported in its place, and the writer goes on
                    item = Dropped(1, time.time())
                    self._count_lost(1)
                else:
                    represented += 1
                    fresh += 1
                    continue
            lines.append(self._dropped_line(item))
            represented += item.count
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # stdout went away (pipe closed): report the loss once it is back
            self._lost_in_writes = represented
            self._count_lost(fresh)
            return False
        self._lost_in_writes = 0
        return True

    def _count_lost(self, count: int) -> None:
        if count and self.on_dropped is not None:
            self.on_dropped(count)
