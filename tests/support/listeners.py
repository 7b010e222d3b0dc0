"""Which processes hold a listening TCP socket on a port, read from /proc (Linux): the event a test waits
for before it relies on a listener, instead of assuming that a process which answered once is listening
everywhere (``--workers``: each worker binds the port itself, one after the other)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

TCP_LISTEN = "0A"  # the st column of /proc/net/tcp: include/net/tcp_states.h, TCP_LISTEN = 10


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (IPv4 or IPv6, any address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` has open (``socket:[inode]`` links in /proc/<pid>/fd)."""
    found: set[str] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_until_listening(pids: Callable[[], list[int]], port: int, count: int, timeout: float = 20) -> list[int]:
    """Wait until ``pids()`` names ``count`` processes that each listen on ``port``; return them."""
    deadline = time.monotonic() + timeout
    while True:
        current = pids()
        listening = listening_inodes(port)
        if len(current) == count and all(socket_inodes(pid) & listening for pid in current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{count} processes listening on {port} expected; {current} of which listen: "
                f"{[pid for pid in current if socket_inodes(pid) & listening]}"
            )
        time.sleep(0.02)
