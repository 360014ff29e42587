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


class EpochBars:
    """Progress of a training run: a batch bar per epoch on a terminal, one line per epoch always."""

    def __init__(self, arch: str, epochs: int, batches_per_epoch: int):
        self.arch, self.epochs, self.batches = arch, epochs, batches_per_epoch
        self.bar = None

    def batch(self) -> None:
        if self.bar is None:
            self.bar = batch_bar(f"{self.arch} epoch", self.batches)
        self.bar.update()

    def epoch(self, result) -> None:
        self.close()
        extra = "".join(f" {name} {value:.4f}" for name, value in sorted(result.parts.items()) if name != "mse")
        print(f"train {self.arch}: epoch {result.epoch}/{self.epochs} train_loss {result.train_loss:.6f} "
              f"test_mse {result.test_mse:.6f}{extra} ({result.seconds:.1f} s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
