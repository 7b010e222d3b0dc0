"""heaptrim: freed heap memory goes back to the operating system, at most once per interval."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kube_oidc_proxy.heaptrim import MALLOC_TRIM, HeapTrimmer

# Fill the heap with 20 KiB buffers (below glibc's mmap threshold: they come from the heap), free nine
# in ten, keep the rest pinning the holes, and print the resident memory before and after a release.
FRAGMENTED_HEAP = """
from kube_oidc_proxy.heaptrim import release_free_heap

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

buffers = [bytes(20 * 1024) for _ in range(5000)]
kept = buffers[::10]
del buffers
before = rss_kib()
assert release_free_heap()
print(before, rss_kib(), len(kept))
"""


@pytest.mark.skipif(MALLOC_TRIM is None, reason="no malloc_trim in this C library (not glibc)")
def test_freed_heap_memory_between_live_buffers_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    before, after, _ = map(int, out.stdout.split())
    # ~90 MiB were freed below live buffers: resident until released
    assert before - after > 50 * 1024, (before, after)


def test_the_heap_is_trimmed_at_most_once_per_interval() -> None:
    released: list[float] = []

    def release() -> bool:
        released.append(1.0)
        return True

    trimmer = HeapTrimmer(interval=60.0, release=release)
    assert [trimmer.due(t) for t in (1000.0, 1030.0, 1059.9, 1060.0, 1100.0, 1120.5)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    assert len(released) == 3
