"""The server caps glibc's malloc arenas (the soak trial's RSS growth came from one arena
per pool thread): counted with glibc's own ``malloc_info`` in a fresh process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt and malloc_info")

_COUNT_ARENAS = r"""
import ctypes, ctypes.util, os, sys, tempfile, threading
from skillmeat_cache.api.serve import cap_malloc_arenas
capped = cap_malloc_arenas() if sys.argv[1] == "cap" else False
def churn(ready, go):
    ready.wait(); go.wait()
    keep = [bytearray(2000) for _ in range(2000)]  # small blocks come from the thread's arena
    go.wait()
barrier_ready, barrier_go = threading.Barrier(16), threading.Barrier(16)
threads = [threading.Thread(target=churn, args=(barrier_ready, barrier_go)) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fdopen.restype = ctypes.c_void_p
with tempfile.TemporaryFile() as f:
    fp = libc.fdopen(os.dup(f.fileno()), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp)); libc.fflush(ctypes.c_void_p(fp))
    f.seek(0)
    print(capped, f.read().decode().count("<heap nr="))
"""


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_ARENAS, mode], capture_output=True, text=True, check=True, env=environment
    ).stdout.split()
    return out[0], int(out[1])


def test_the_cap_keeps_sixteen_threads_to_two_arenas() -> None:
    capped, arenas = _arenas("cap")
    assert capped == "True" and arenas <= 2
    _, uncapped = _arenas("none")
    assert uncapped > 2  # without it the same threads spread over more arenas


def test_an_operators_malloc_arena_max_is_left_alone() -> None:
    capped, arenas = _arenas("cap", MALLOC_ARENA_MAX="4")
    assert capped == "False" and arenas <= 4
