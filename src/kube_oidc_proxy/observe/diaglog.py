"""Diagnostic log (stderr): one record is exactly one line, written through a bounded queue.

A message can quote what a client sent (a request path, a claim, a header) and a record can carry a
traceback; ``OneLineFormatter`` escapes line feeds and carriage returns as a visible ``\\n`` and ``\\r``
(a traceback becomes one long line), other C0 controls and DEL as ``\\xNN``, and C1 controls (NEL among
them), U+2028/2029 and lone surrogates as ``\\uNNNN``. So no client can forge a second record, and every
record can be encoded for stderr. A backslash is left as it is: this log is read by people, and the
guarantee is one record per line, not a reversible encoding (the access log has that).

``BoundedQueueHandler`` does the job of ``logging.handlers.QueueHandler`` with a ``LineQueue``: the
calling thread only merges the message with its arguments (and the traceback into text); formatting and
writing happen on the queue's thread, so a slow stderr never blocks the event loop, and a stalled one
costs at most ``DIAGNOSTIC_QUEUE_LIMIT`` records of memory. Records beyond it are dropped, counted, and
reported in their place as a WARNING ``N log lines dropped`` from the logger ``kop.log``.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Final

from kube_oidc_proxy.observe.linequeue import Dropped, LineQueue, TextStream

# A queued record with its merged message is ~700 bytes, so ~7 MB at most; at INFO every refused request
# logs one line, so this holds about a second of a flood of bad requests.
DIAGNOSTIC_QUEUE_LIMIT: Final = 10_000
LINE_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DROPPED_LOGGER: Final = "kop.log"

_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


class BoundedQueueHandler(logging.Handler):
    def __init__(self, stream: TextStream, *, limit: int = DIAGNOSTIC_QUEUE_LIMIT) -> None:
        super().__init__()
        self.line_formatter = OneLineFormatter()
        self.lines = LineQueue(
            stream,
            render=self._render,
            dropped_line=self._dropped_line,
            limit=limit,
            name="diagnostic-log",
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put(self._prepared(record))
        except Exception:
            self.handleError(record)

    def _prepared(self, record: logging.LogRecord) -> logging.LogRecord:
        """As ``QueueHandler.prepare``: a copy with the message merged (arguments can change after the call)
        and the traceback as text, so the writer thread holds nothing of the caller's."""
        message = self.format(record)  # no formatter set: the message, then the traceback text
        record = copy.copy(record)
        record.message = record.msg = message
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        return record

    def _render(self, item: object) -> str:
        assert isinstance(item, logging.LogRecord)
        return self.line_formatter.format(item)

    def _dropped_line(self, gap: Dropped) -> str:
        plural = "" if gap.count == 1 else "s"
        record = logging.LogRecord(
            DROPPED_LOGGER, logging.WARNING, __file__, 0, f"{gap.count} log line{plural} dropped", None, None
        )
        record.created, record.msecs = gap.at, (gap.at % 1) * 1000
        return self.line_formatter.format(record)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self.lines.close()
        super().close()
