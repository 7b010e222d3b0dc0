"""The proxy with tracemalloc on, for bench/watch_bytes.py only: a thread watches ``$KOP_TRACE_DIR`` and, for
every ``<name>.request`` file that appears, writes a tracemalloc snapshot (``<name>.snap``) and the process's
RSS and malloc totals (``<name>.json``), then removes the request.

    KOP_TRACE_DIR=/tmp/x python bench/traced_proxy.py <the proxy's flags>
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

from kube_oidc_proxy.cli import main


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


def _malloc_in_use() -> int:
    """glibc's bytes handed out by malloc (heap and mmapped), Python's arenas included."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _serve(directory: Path) -> None:
    while True:
        for request in directory.glob("*.request"):
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            name = request.stem
            snapshot.dump(str(directory / f"{name}.snap"))
            traced, _ = tracemalloc.get_traced_memory()
            totals = {"rss": _rss_bytes(), "malloc_in_use": _malloc_in_use(), "traced": traced}
            (directory / f"{name}.json").write_text(json.dumps(totals))
            request.unlink()
        time.sleep(0.2)


tracemalloc.start(int(os.environ.get("KOP_TRACE_FRAMES", "1")))
threading.Thread(target=_serve, args=(Path(os.environ["KOP_TRACE_DIR"]),), daemon=True).start()
raise SystemExit(main())
