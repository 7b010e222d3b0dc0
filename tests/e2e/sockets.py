"""The TCP connections a process holds, read from /proc (Linux): which of them are established to a port.

How many connections a client really opened, or the proxy really holds to kube-apiserver, is a fact of the
kernel's, not of anyone's logging.
"""

from __future__ import annotations

import os
from pathlib import Path

ESTABLISHED = "01"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def established(pid: int, *, remote_port: int = 0, local_port: int = 0) -> list[tuple[int, int]]:
    """(local port, remote port) of the established TCP connections of ``pid`` to ``remote_port`` (or from
    ``local_port``: a server's accepted connections)."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state != ESTABLISHED or inode not in inodes:
                continue
            ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
            if (remote_port and ports[1] != remote_port) or (local_port and ports[0] != local_port):
                continue
            found.append(ports)
    return found
