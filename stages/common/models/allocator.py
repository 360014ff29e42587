"""How glibc's allocator serves torch's CPU buffers: two settings, one per kind of torch stage.

torch's CPU allocator takes every tensor from malloc. By default glibc moves its
mmap threshold with the sizes freed and gives the top of the heap back to the
kernel whenever more than twice that threshold is free there; a training step that
frees its activations and allocates them again then faults its pages in anew each
time. The settings are process-wide, so a stage's `main()` chooses one, before its
first tensor. Neither changes a computed value. Both are no-ops off glibc.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit (4 * 1024 * 1024 * sizeof(long)).
MMAP_THRESHOLD_MAX_BYTES = 32 << 20
# A trim threshold the heap never reaches: freed memory stays in the process.
TRIM_NEVER_BYTES = 2**31 - 1


def _mallopt():
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory_for_reuse() -> bool:
    """Training: keep freed buffers in the heap for the next step; True where glibc took it.

    Fixes the mmap threshold at its maximum (a step's activations, a few MB, then come
    from the heap from the first step on) and never trims the heap, so a step reuses
    the pages of the last instead of faulting in new ones. It costs the memory kept
    (docs/speed.md has the figures).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    took_mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX_BYTES)
    took_trim = mallopt(M_TRIM_THRESHOLD, TRIM_NEVER_BYTES)
    return bool(took_mmap and took_trim)


def freed_memory_kept_env() -> dict:
    """`keep_freed_memory_for_reuse` as environment variables, for a program that cannot call it (glibc reads them
    when the process starts): what the benchmark gives the notebook's own code to show what this one setting is
    worth on its own."""
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_MAX_BYTES), "MALLOC_TRIM_THRESHOLD_": str(TRIM_NEVER_BYTES)}


def keep_large_buffers_off_heap(threshold_bytes: int = 4 << 20) -> bool:
    """Encoding: serve every allocation above `threshold_bytes` by mmap, returned to the OS on free.

    glibc raises its mmap threshold each time a large block is freed, after which
    torch's large per-batch buffers come from the heap and fragment it, and encoding a
    full split peaked at more than twice the memory. A fixed threshold (what
    MALLOC_MMAP_THRESHOLD_ sets) stops that. Training uses `keep_freed_memory_for_reuse`
    instead: its small batches do not fragment the heap, and mmap-ing every step's
    activations would slow each step.
    """
    mallopt = _mallopt()
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, threshold_bytes))
