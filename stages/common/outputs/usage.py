"""What a stage cost: its process's peak resident memory and wall time, for the run-facts files."""
from __future__ import annotations

import os
import resource
import sys
import time

# Where the kernel cannot say when this process started: from when this module was first imported.
_IMPORTED = time.monotonic()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def process_seconds() -> float:
    """Wall seconds since this process started: the whole stage, imports and reading included, which a sweep
    adds up to say where a cell's time went."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rpartition(") ")[2].split()[19])
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, AttributeError, IndexError):
        return round(time.monotonic() - _IMPORTED, 2)


def usage() -> dict:
    """The run-facts entries every stage writes: peak memory and its process's wall time."""
    return {"peak_rss_mb": peak_rss_mb(), "process_seconds": process_seconds()}
