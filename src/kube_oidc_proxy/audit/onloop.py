"""Blocking audit delivery to the log file (``--audit-log-mode=blocking``): one ``write()`` per loop turn,
and a wait only where kube-apiserver's order needs one.

kube-apiserver's blocking mode writes each event before the request goes on. What a request here must not
pass is its RequestReceived event: the events emitted during one turn of the event loop are written
together at the end of that turn, in one ``write()``, and ``add(..., wait=True)`` returns the future of
that write, which the request awaits before it goes upstream. The later stages (ResponseStarted,
ResponseComplete, Panic) come after the response has been handed to the client's connection, so nothing
waits for them: they go into the same end-of-turn write. Under load one system call serves many
requests (one per event cost ~15 us of kernel time here), and a request awaits one future, not two.

The log file is written on the event loop: a ``write()``, and when the file is full a rename and an open.
Compressing and pruning the rotated file never happens here (``logbackups`` does it in its thread).
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
        self._written: asyncio.Future[bool] | None = None

    def add(self, line: bytes, *, wait: bool) -> asyncio.Future[bool] | None:
        """Queue ``line`` for the write at the end of this loop turn; with ``wait``, the future that says
        whether that write succeeded."""
        self._lines.append(line)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._flush)
        return self._written if wait else None

    def _flush(self) -> None:
        lines, written = self._lines, self._written
        self._lines, self._written = [], None
        ok = self._write(lines)
        if written is not None and not written.done():
            written.set_result(ok)

    def _write(self, lines: list[bytes]) -> bool:
        if not lines:
            return True
        try:
            self.log.write_now(lines)
        except Exception as exc:  # a full disk must not take the request path down
            self._on_failure(self.log.name, exc, len(lines))
            return False
        return True

    def close(self) -> None:
        """Write what is queued (shutdown: the loop may not turn again), then close the file. It may run in
        another thread (the server's stop): a pending future is left to its ``_flush`` on the loop."""
        lines, self._lines = self._lines, []
        self._write(lines)
        self.log.close()
