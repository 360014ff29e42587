"""The Stacked AE's fused Adam step alone, with and without its state pushed out of the caches between steps.

The notebook's Stacked AE's parameters (1.15 million floats: parameters, gradients and the two moments are 18 MB),
gradients drawn once, 20 steps of warm-up, then 200 timed steps with EVICT_MB of memory written before each (0: the
optimizer's state stays in the caches); the median step is printed. How much of the Adam step's spread within
training (profile_stacked.log) the caches can explain.

    python benchmarks/records/2026-12-06-amd-epyc-zen4-glibc/adam_cache.py EVICT_MB
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.notebook_literal import StackedAE  # noqa: E402


def main(evict_mb: int) -> None:
    torch.manual_seed(0)
    parameters = list(StackedAE(64).parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    optimizer = torch.optim.Adam(parameters, lr=1e-3, fused=True)
    evictor = torch.zeros(evict_mb * 2**18) if evict_mb else None  # 2**18 floats a MiB
    for _ in range(20):
        optimizer.step()
    seconds = []
    for _ in range(200):
        if evictor is not None:
            evictor.add_(1.0)
        started = time.perf_counter()
        optimizer.step()
        seconds.append(time.perf_counter() - started)
    print(f"{evict_mb} MiB written between steps: Adam step median {sorted(seconds)[100] * 1e3:.2f} ms "
          f"({sum(p.numel() for p in parameters)} parameters)")


if __name__ == "__main__":
    main(int(sys.argv[1]))
