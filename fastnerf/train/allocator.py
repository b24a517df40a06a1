"""Keep freed memory inside the process during CPU training (glibc malloc).

Every training step allocates and frees the same large activation buffers. glibc hands blocks
above its mmap threshold back to the kernel when they are freed, so the next step page-faults
them in again: about 4,700 page faults and 8 ms of system time per step for the hash MLPs alone
on the project's 2-core CPU. Raising the mmap and trim thresholds keeps freed blocks for reuse
(faults fell to about 100 per step). jemalloc or tcmalloc through LD_PRELOAD do the same; this
needs nothing installed. The process keeps its peak heap instead of returning it between steps.
Unlike denormal flushing this is not undone after training: glibc cannot report the old
thresholds, and keeping freed memory changes no result, only when memory goes back to the OS.
Off glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB once per process; True if it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
