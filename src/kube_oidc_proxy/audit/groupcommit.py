"""Blocking audit delivery to the webhook (``--audit-webhook-mode=blocking``) without a POST per event.

kube-apiserver's blocking mode makes a request wait until its event is sent. Here the events that
requests emit during one turn of the event loop are sent together at the end of that turn, as one
EventList POSTed in a thread, and each request waits for the POST that carries its event. A request still
never goes on before its event is sent; under load, one POST serves many requests.

The log file in blocking mode does not wait this way (a future and a task switch per event cost more
than the ``write()``): see ``onloop``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kube_oidc_proxy.audit.backends import Sink

FailureHandler = Callable[[str, BaseException, int], None]  # backend name, error, events lost


class GroupCommit:
    def __init__(self, sink: Sink, on_failure: FailureHandler, *, in_thread: bool) -> None:
        self.sink = sink
        self._on_failure = on_failure
        self._in_thread = in_thread
        self._lines: list[bytes] = []
        self._written: asyncio.Future[bool] | None = None

    def add(self, line: bytes) -> asyncio.Future[bool]:
        """Queue ``line`` for the write at the end of this loop turn; the future says whether it was written."""
        self._lines.append(line)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._flush)
        return self._written

    def _flush(self) -> None:
        lines, written = self._lines, self._written
        self._lines, self._written = [], None
        assert written is not None
        if self._in_thread:
            task = asyncio.ensure_future(asyncio.to_thread(self._write, lines))
            task.add_done_callback(lambda t: self._finish(written, t.exception(), len(lines)))
            return
        try:
            self._write(lines)
        except Exception as exc:  # a full disk must not take the request path down
            self._finish(written, exc, len(lines))
        else:
            self._finish(written, None, len(lines))

    def _write(self, lines: list[bytes]) -> None:
        self.sink.write(lines)
        self.sink.flush()  # written means handed to the operating system, as kube-apiserver's log backend

    def _finish(self, written: asyncio.Future[bool], error: BaseException | None, count: int) -> None:
        if error is not None:
            self._on_failure(self.sink.name, error, count)
        if not written.done():
            written.set_result(error is None)
