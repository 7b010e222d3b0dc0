"""What one HTTP/2 client connection may make the proxy do, beyond what the h2 library bounds itself.

The h2 library already refuses more than ``SETTINGS_MAX_CONCURRENT_STREAMS`` open streams, header blocks
past ``SETTINGS_MAX_HEADER_LIST_SIZE`` (HPACK bombs included: it counts while it decodes), more than 64
CONTINUATION frames for one block, and frames over ``SETTINGS_MAX_FRAME_SIZE``. What it cannot see:

- **Rapid reset** (CVE-2023-44487): a stream the client resets is closed for h2 at once, but the proxy's
  work for it (verifying the token, the reviews, kube-apiserver's request) has started. ``ResetBudget``
  counts streams reset before their response ended; past the budget the connection gets GOAWAY
  ``ENHANCE_YOUR_CALM``. The budget refills by one for every response that ended normally and slowly
  with time, so a client that cancels now and then (a closed informer, an interrupted ``kubectl``) never
  meets it. Exchanges still running after a reset also count against ``running_limit``: past it a new
  stream is refused (``REFUSED_STREAM``, which Go clients retry).
- **Control frame floods** (CVE-2019-9512, -9515): every PING and SETTINGS is answered, and a new stream
  with a bad head is refused at once; a client that sends them and never reads would make the answers
  queue without end. Go's server allows 10,000 queued control frames; so do we (PINGs, SETTINGS and new
  streams), counting only while the client is not reading what it is sent.
"""

from __future__ import annotations

from typing import Final

# kube-apiserver's default for --http2-max-streams-per-connection.
DEFAULT_MAX_STREAMS: Final = 100
# Go's http2 server (maxQueuedControlFrames).
MAX_QUEUED_CONTROL_FRAMES: Final = 10_000
# Resets a connection may have before its responses: this many times its stream limit at once.
RESET_BURST_PER_STREAM: Final = 2
# Resets regained per second, whatever the stream limit.
RESETS_REGAINED_PER_SECOND: Final = 10.0


def running_limit(max_streams: int) -> int:
    """Exchanges one connection may have running, those whose stream the client reset included."""
    return 2 * max_streams


class ResetBudget:
    __slots__ = ("_capacity", "_level", "_updated")

    def __init__(self, max_streams: int, now: float) -> None:
        self._capacity = float(RESET_BURST_PER_STREAM * max_streams)
        self._level = self._capacity
        self._updated = now

    def answered(self) -> None:
        """A response ended normally."""
        self._level = min(self._capacity, self._level + 1)

    def reset(self, now: float) -> bool:
        """A stream was reset before its response ended; False once the budget is spent."""
        self._level = min(self._capacity, self._level + (now - self._updated) * RESETS_REGAINED_PER_SECOND)
        self._updated = now
        self._level -= 1
        return self._level >= 0


class ControlFrameBacklog:
    """PINGs and SETTINGS answered while the client is not reading: past the bound the connection is cut."""

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count = 0

    def answered(self, *, client_reading: bool) -> bool:
        """One more control frame answered; False once too many wait behind a client that does not read."""
        if client_reading:
            self._count = 0
            return True
        self._count += 1
        return self._count <= MAX_QUEUED_CONTROL_FRAMES
