"""Keep freed memory in the process while bulk data flows (glibc's allocator only).

A file copy through the tunnel allocates and frees buffers of about 256 KiB thousands of
times a second in every process on the way (SSH packets, stream frames, records,
WebSocket frames). With its default, self-adjusting settings glibc gives the top of
the heap back to the kernel as soon as a little more than two such buffers are free
there, and the next allocation takes the pages back: each page is faulted in and
zeroed again. Measured on ``put`` and ``get`` (``docs/PERFORMANCE.md``), that was
15,000 to 30,000 page faults per 100 MB over relay, agent and console, and a tenth of
the CPU of the copy.

:func:`keep_freed_memory` fixes the two thresholds instead: blocks up to
``MMAP_THRESHOLD`` come from the heap, and the heap is trimmed only once
``TRIM_THRESHOLD`` bytes are free at its top. A process then keeps at most that much
memory it no longer uses. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: glibc's mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 32 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds (see the module doc); True if they were set.

    Call once, early in a process that moves bulk data (agent, console, relay).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Setting either threshold turns glibc's self-adjustment off, so set both.
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
