"""How one diagnostic record reads on stderr: ``--logging-format`` text (klog's header) or json
(component-base's JSON format). Pure: a prepared ``logging.LogRecord`` in, one line out.

text, as klog writes it (``Lmmdd hh:mm:ss.uuuuuu pid file:line] msg``), in UTC::

    W1205 18:49:40.304123   12345 jwks.py:196] fetching signing keys of https://idp.example failed ...

The letter is I (DEBUG, INFO), W (WARNING) or E (ERROR, CRITICAL: Python's critical does not end the
process, klog's F would say it did); the pid tells ``--workers`` apart. A traceback follows the message
after a line break; the whole line is then escaped by ``diaglog.one_line``, so it stays one line.

json, as component-base's (k8s.io/component-base/logs/json: zap's encoder with ``ts`` in milliseconds
since the epoch, the short caller, ``v`` on every record that is not an error, ``err`` last)::

    {"ts":1764960580304.123,"logger":"kop.jwks","caller":"authn/jwks.py:196","msg":"...","v":0}

DEBUG records (``-v=4`` and up) have ``"v":4``, INFO and WARNING ``"v":0`` (component-base's JSON has no
warning level: klog writes a warning as an info record); ERROR and CRITICAL have no ``v``, as a logr
error. A traceback is the ``err`` string. ``logger`` is the Python logger's name, in the place zap gives
a named logger. Strings are escaped by ``accesslog.json_line``: one line, valid UTF-8.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

from kube_oidc_proxy.observe.accesslog import json_line

DEBUG_VERBOSITY: Final = 4  # -v at which DEBUG records are written (server.lifecycle.setup_logging)


def severity_letter(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "E"
    if levelno >= logging.WARNING:
        return "W"
    return "I"


def klog_header(record: logging.LogRecord) -> str:
    micros = int(record.created * 1_000_000)
    tm = time.gmtime(micros // 1_000_000)
    return (
        f"{severity_letter(record.levelno)}{tm.tm_mon:02d}{tm.tm_mday:02d} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{micros % 1_000_000:06d} "
        f"{record.process or 0:>7} {os.path.basename(record.pathname)}:{record.lineno}] "
    )


def text_line(record: logging.LogRecord) -> str:
    """klog's header and the message; not yet escaped (``diaglog`` escapes the whole line)."""
    details = record.exc_text  # the traceback, kept apart from the message by diaglog
    message = record.getMessage()
    return klog_header(record) + (f"{message}\n{details}" if details else message)


def short_caller(pathname: str, lineno: int) -> str:
    """zap's ShortCallerEncoder: the file and the directory it is in."""
    directory, name = os.path.split(pathname)
    return f"{os.path.basename(directory)}/{name}:{lineno}" if directory else f"{name}:{lineno}"


def json_record(record: logging.LogRecord) -> str:
    obj: dict[str, Any] = {
        "ts": record.created * 1000,
        "logger": record.name,
        "caller": short_caller(record.pathname, record.lineno),
        "msg": record.getMessage(),
    }
    if record.levelno < logging.ERROR:
        obj["v"] = DEBUG_VERBOSITY if record.levelno < logging.INFO else 0
    if record.exc_text:
        obj["err"] = record.exc_text
    return json_line(obj)
