"""Pausing a transport's reading without losing the bytes that arrive together with the peer's close.

uvloop's TLS transport (0.23) throws away received bytes it has not yet handed over when the TCP close
arrives while the application has paused reading (MagicStack/uvloop#661); asyncio's own TLS transport
keeps them. Go peers (kube-apiserver, kubectl) send their last bytes, close_notify and FIN together,
and the proxy pauses one side whenever the other is slower, so a paused tunnel lost up to 256 KiB:
the end of a ``kubectl cp`` from a pod.

While paused, a TLS transport's read-buffer high-water mark is set to zero: it stops reading the socket
as soon as anything waits undelivered, so the FIN stays in the kernel behind those bytes. The mark is
restored only after the transport has delivered what waited (its own delivery is scheduled first on
resume). Switching the TLS implementation instead cost a fifth of the throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def pause_reading(transport: asyncio.Transport) -> None:
    transport.pause_reading()
    set_read_ahead = _read_ahead_control(transport)
    if set_read_ahead is not None and not transport.is_closing():
        set_read_ahead(high=0)


def resume_reading(transport: asyncio.Transport) -> None:
    transport.resume_reading()  # schedules delivery of what waits
    if _read_ahead_control(transport) is not None:
        asyncio.get_running_loop().call_soon(_restore_read_ahead, transport)


def _restore_read_ahead(transport: asyncio.Transport) -> None:
    set_read_ahead = _read_ahead_control(transport)
    if set_read_ahead is not None and transport.is_reading() and not transport.is_closing():
        set_read_ahead()  # the transport's defaults


def _read_ahead_control(transport: asyncio.Transport) -> Callable[..., None] | None:
    """TLS transports (asyncio's and uvloop's) have ``set_read_buffer_limits``; plain TCP ones need none."""
    control: Callable[..., None] | None = getattr(transport, "set_read_buffer_limits", None)
    return control
