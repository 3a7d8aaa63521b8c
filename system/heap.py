"""Keep freed memory in the process, so that XLA:CPU's per-step buffers stop page-faulting.

Each call of a compiled function allocates its temporaries afresh (tens of MB for the train
step), and glibc serves blocks that large with ``mmap`` and unmaps them on free, so every step
the kernel maps and zeroes fresh pages. ``keep_freed_memory()`` asks glibc (``mallopt``) for one
arena, no ``mmap`` and no trimming: freed blocks are reused, already mapped. The process then
keeps its peak heap until it exits, which a training process does anyway. What it buys is
measured in ``docs/speed.md``.

It acts on the whole process and only under glibc (Linux); elsewhere, or with
``BVAEX_MALLOC=default``, it does nothing. Call it before the first JAX computation (threads
that already made their own arenas keep them): ``cli.run_main`` does, for every script.
"""
import ctypes
import os
import sys

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
ENV = "BVAEX_MALLOC"

_applied = None


def keep_freed_memory():
    """One glibc arena, no mmap, no trim. Returns True when the settings took effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "keep") == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has it (musl's mallopt does nothing)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _applied = all(mallopt(param, value) == 1 for param, value in
                   ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2 ** 31 - 1)))
    return _applied


def applied():
    """None before ``keep_freed_memory()`` was called, then whether it took effect."""
    return _applied
