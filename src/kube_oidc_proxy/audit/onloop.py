"""Blocking audit delivery to the log file (``--audit-log-mode=blocking``), on the event loop, without a wait.

kube-apiserver's blocking mode writes each event before the request goes on. What a request here must not
pass is its RequestReceived event: ``add(..., now=True)`` writes it, with every line queued before it (so
the file keeps the order events were emitted in), before it returns, and the request goes upstream after.
The later stages (ResponseStarted, ResponseComplete, Panic) come after the response has been handed to
the client's connection, so nothing waits for them: they are queued and written together at the end of
the loop turn, or sooner with the next RequestReceived. A request costs at most two ``write()``s, under
load fewer, and no future or task switch (awaiting one per event cost the loop more than the write).

Compressing and pruning a rotated file never happens here (``logbackups`` does it in its thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kube_oidc_proxy.audit.backends import LogFile

FailureHandler = Callable[[str, BaseException, int], None]  # backend name, error, events lost


class OnLoopLog:
    def __init__(self, log: LogFile, on_failure: FailureHandler) -> None:
        self.log = log
        self._on_failure = on_failure
        self._lines: list[bytes] = []
        self._scheduled = False

    def add(self, line: bytes, *, now: bool) -> bool:
        """Queue ``line``; with ``now`` write it (and what was queued) before returning: False if that failed."""
        self._lines.append(line)
        if now:
            return self.flush()
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._end_of_turn)
        return True

    def _end_of_turn(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> bool:
        lines, self._lines = self._lines, []
        if not lines:
            return True
        try:
            self.log.write_now(lines)
        except Exception as exc:  # a full disk must not take the request path down
            self._on_failure(self.log.name, exc, len(lines))
            return False
        return True

    def close(self) -> None:
        self.flush()
        self.log.close()
