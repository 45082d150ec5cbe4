"""Allocator tuning for glibc: keep freed activation buffers in the heap instead of unmapping them.

Running a program allocates and frees many large intermediate tensors. With glibc's adaptive defaults, after
a process has run a few different models the freed buffers keep being returned to the OS (``munmap`` /
heap trimming) and the next run page-faults them back, measured at up to 4x slower for the interpreter on
MobileNetV3 at batch 16 (docs/performance.md). Pinning the mmap and trim thresholds avoids it. This is a
process-wide setting, so the library never applies it on its own: the ``devicefit`` command line (our own
process) and the benchmarks call :func:`tune_malloc`; library users may call it in their own programs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD_BYTES = 1 << 30


def tune_malloc(threshold_bytes: int = _THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap and trim thresholds; returns True when applied (False off glibc or when disabled).

    Set ``DEVICEFIT_NO_MALLOC_TUNING=1`` to leave the allocator alone.
    """
    if os.environ.get("DEVICEFIT_NO_MALLOC_TUNING"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    value = min(threshold_bytes, 2**31 - 1)
    # mmap threshold above 32 MiB (HEAP_MAX/2 on 64-bit) is refused by glibc; clamp to what it takes
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, min(value, 32 << 20)) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, value) == 1
    return ok_mmap and ok_trim
