"""The malloc arena limit: asked of the real C library of this machine."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from webchat.memory import limit_malloc_arenas


@pytest.mark.skipif(
    platform.system() != "Linux" or "musl" in (ctypes.util.find_library("c") or ""),
    reason="mallopt's arena limit is glibc's",
)
def test_glibc_takes_the_arena_limit():
    assert limit_malloc_arenas() is True
    assert limit_malloc_arenas(8) is True  # and a later call may change it again
    assert limit_malloc_arenas() is True
