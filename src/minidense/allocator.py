"""Keep freed memory in the process while training on a CPU, instead of handing it back to the kernel.

A training step allocates and frees the same activation-sized buffers every time. glibc's malloc
serves a large block (above its mmap threshold, at most 32 MiB) with fresh pages from the kernel
and unmaps them on free, and it hands the top of its heap back once more than its trim threshold
is free. Every step the kernel then maps and zeroes the same memory again: a page fault per 4 KiB,
counted as system time. What that costs a training step is measured by ``benchmarks/train_speed.py``
(the row "- keep freed memory" of ``book/results/speed-cpu-*.json``).

Inside :func:`keep_freed_memory` malloc serves every size from its heap and keeps what is freed, so
once the heap has grown to a step's peak (a few steps: small allocations can split a freed block
and send the next large one to fresh memory) no page is faulted in again. The price: the process keeps its peak memory
until the block ends. What tcmalloc and jemalloc (the allocators Intel's PyTorch guide preloads)
do by design, two calls of ``mallopt`` do here, from inside the running process.
"""

import contextlib
import ctypes
import platform

__all__ = ["keep_freed_memory", "can_keep_freed_memory"]

# mallopt's parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_KEEP = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}  # no mmap for any size; never trim the heap
# On exit: glibc's own limits as its dynamic rule leaves them once large blocks have been freed
# (mmap threshold at its 32 MiB maximum, trim threshold twice that); any mallopt call switches
# that rule off, so the settled values are restored instead of the start-up ones.
_RESTORE = {_M_MMAP_MAX: 65536, _M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 64 * 2**20}

_depth = 0


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)  # the symbols the process already has, glibc's among them
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def can_keep_freed_memory():
    """Whether :func:`keep_freed_memory` does anything here: Linux with glibc's malloc."""
    return _glibc() is not None


def _set(libc, settings):
    """Apply every one of ``settings`` with ``mallopt``; whether all of them were accepted."""
    accepted = [libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) == 1  # every one, even after a refusal
                for parameter, value in settings.items()]
    return all(accepted)


@contextlib.contextmanager
def keep_freed_memory(enabled=True):
    """Within the block, glibc's malloc keeps freed memory for reuse instead of returning it.

    Yields whether it is in effect: ``False`` with ``enabled=False``, where the C library is
    not glibc (macOS, Windows, musl), or where glibc refuses a setting (then nothing is
    changed, as far as glibc allows). Nested blocks are fine; the outermost one restores
    malloc's limits on exit and hands the memory kept back to the kernel (``malloc_trim``).
    Numbers computed inside are unchanged: only where the memory comes from changes.
    """
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    if _depth == 0 and not _set(libc, _KEEP):
        _set(libc, _RESTORE)
        yield False
        return
    _depth += 1
    try:
        yield True
    finally:
        _depth -= 1
        if _depth == 0:
            _set(libc, _RESTORE)
            libc.malloc_trim(ctypes.c_size_t(0))
