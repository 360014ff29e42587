"""Progress reporting: a tqdm bar on a terminal, plain log lines otherwise (CI, DVC logs)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm


def interactive() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def byte_progress(name: str) -> Iterator:
    """Yield a `progress(received, total)` callback that drives a byte-count bar."""
    bar = tqdm(desc=name, unit="B", unit_scale=True, disable=not interactive(), leave=False)

    def progress(received: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(received - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def batch_bar(desc: str, total: int):
    """A bar over the batches of one epoch; disabled (None-safe) when not on a terminal."""
    return tqdm(desc=desc, total=total, unit="batch", disable=not interactive(), leave=False)
