"""What a stage cost: its process's peak resident memory, for the metrics files."""
from __future__ import annotations

import ctypes
import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def keep_large_buffers_off_heap(threshold_bytes: int = 4 << 20) -> None:
    """Serve every allocation above `threshold_bytes` by mmap, returned to the OS on free.

    glibc raises its mmap threshold each time a large block is freed, after which
    torch's per-batch buffers come from the heap and fragment it: encoding the 60,000
    Fashion-MNIST training images with the Conv AE in batches of 1024 then peaked at
    2.3 GB instead of 0.9 GB. A fixed threshold (what MALLOC_MMAP_THRESHOLD_ sets)
    stops that. Training does not use it: its batches of 128 do not fragment the heap
    (peak 1.3 GB), and mmap-ing the Super-Resolution AE's 6 MB activations cost 20%
    of its epoch time. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, threshold_bytes)
