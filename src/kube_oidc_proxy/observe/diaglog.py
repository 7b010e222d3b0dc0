"""Diagnostic log (stderr): one record is exactly one line, written through a bounded queue.

A line reads as klog's (``--logging-format=text``, the default) or as component-base's JSON
(``--logging-format=json``); ``diagformat`` says how. A message can quote what a client sent (a request
path, a claim, a header) and a record can carry a traceback. In text, ``OneLineFormatter`` escapes line
feeds and carriage returns as a visible ``\\n`` and ``\\r`` (a traceback becomes one long line), other C0
controls and DEL as ``\\xNN``, and C1 controls (NEL among them), U+2028/2029 and lone surrogates as
``\\uNNNN``; in JSON every string is JSON-escaped the same way the JSON access log is. So no client can
forge a second record, and every record can be encoded for stderr. In text a backslash is left as it is:
that format is read by people, and the guarantee is one record per line, not a reversible encoding.

``BoundedQueueHandler`` does the job of ``logging.handlers.QueueHandler`` with a ``LineQueue``: the
calling thread only merges the message with its arguments (and the traceback into text); formatting and
writing happen on the queue's thread, so a slow stderr never blocks the event loop, and a stalled one
costs at most ``DIAGNOSTIC_QUEUE_LIMIT`` records of memory. Records beyond it are dropped, counted, and
reported in their place as a WARNING ``N log lines dropped`` from the logger ``kop.log``.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
from typing import Final

from kube_oidc_proxy.observe.diagformat import json_record, text_line
from kube_oidc_proxy.observe.linequeue import Dropped, LineQueue, TextStream

# A queued record with its merged message is ~700 bytes, so ~7 MB at most; at INFO every refused request
# logs one line, so this holds about a second of a flood of bad requests.
DIAGNOSTIC_QUEUE_LIMIT: Final = 10_000
DROPPED_LOGGER: Final = "kop.log"

_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN: Final = logging.Formatter()  # the standard traceback and stack texts


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    """A record as one line of ``--logging-format`` (text or json) for a record ``_prepared`` made."""

    def __init__(self, logging_format: str = "text") -> None:
        super().__init__()
        self.json = logging_format == "json"

    def format(self, record: logging.LogRecord) -> str:
        return json_record(record) if self.json else one_line(text_line(record))


class BoundedQueueHandler(logging.Handler):
    def __init__(
        self, stream: TextStream, *, limit: int = DIAGNOSTIC_QUEUE_LIMIT, logging_format: str = "text"
    ) -> None:
        super().__init__()
        self.line_formatter = OneLineFormatter(logging_format)
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
        and the traceback as text in ``exc_text``, so the writer thread holds nothing of the caller's."""
        message = record.getMessage()
        details = []
        if record.exc_info:
            details.append(_PLAIN.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(_PLAIN.formatStack(record.stack_info))
        record = copy.copy(record)
        record.message = record.msg = message
        record.args = record.exc_info = record.stack_info = None
        record.exc_text = "\n".join(details) or None
        return record

    def _render(self, item: object) -> str:
        assert isinstance(item, logging.LogRecord)
        return self.line_formatter.format(item)

    def _dropped_line(self, gap: Dropped) -> str:
        plural = "" if gap.count == 1 else "s"
        frame = inspect.currentframe()  # the caller the line names: here
        line = frame.f_lineno if frame is not None else 0
        record = logging.LogRecord(
            DROPPED_LOGGER, logging.WARNING, __file__, line, f"{gap.count} log line{plural} dropped", None, None
        )
        record.created, record.msecs = gap.at, (gap.at % 1) * 1000
        return self.line_formatter.format(record)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self.lines.close()
        super().close()
