"""Fewer malloc arenas, so thousands of connection threads do not scatter free memory.

glibc gives threads their own malloc arenas (up to eight per core) to cut lock
contention. A chat server has a thread or two per connection that allocate a
little and wait: memory freed in one arena is not reused by threads of another,
and the resident size grows. Two arenas measured 83.9 instead of 94.3 KB per
WebSocket connection before the rooms work, and 89.2 instead of 111.3 KB after
it (benchmarks/README.md, "Memory: malloc arenas"). The GIL already serialises
most allocation, so the contention the arenas avoid is small here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt's parameter number for the arena limit (glibc's malloc.h: M_ARENA_MAX).
M_ARENA_MAX = -8
# Arenas webchat allows: one for the threads that are busy at once, one spare.
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_ARENA_MAX, arenas))
    if not ok:
        log.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return ok
