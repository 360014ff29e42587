"""Where a training step's time goes: torch.profiler over the project's training loop.

    python -m benchmarks.profile_step [--arch conv] [--steps 20]

Prints, per operator, the share of CPU time of training steps at batch 128 in the
layout the train stage uses, and each convolution's achieved GFLOP/s.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from stages.common.models import build_model
from stages.common.training import adam, fast_layout, train_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="conv")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = fast_layout(build_model(args.arch, 64), cpu)
    optimizer = adam(model, 1e-3)
    x = torch.rand(128 * args.steps, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, optimizer, x[:256], 128, generator, "fp32")  # warm-up

    with FlopCounterMode(display=False) as counter:
        train_epoch(model, optimizer, x[:128], 128, generator, "fp32")
    flops_per_step = counter.get_total_flops()

    started = time.perf_counter()
    train_epoch(model, optimizer, x, 128, generator, "fp32")
    step_seconds = (time.perf_counter() - started) / args.steps
    print(f"{args.arch}: {step_seconds * 1e3:.1f} ms per step of 128, {flops_per_step / 1e9:.2f} GFLOP, "
          f"{flops_per_step / step_seconds / 1e9:.0f} GFLOP/s")

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        train_epoch(model, optimizer, x, 128, generator, "fp32")
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n{'share':>6}  {'ms/step':>8}  operator [input shapes]")
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]:
        share = event.self_cpu_time_total / total
        per_step = event.self_cpu_time_total / 1e3 / args.steps
        shapes = str(event.input_shapes)[:70]
        print(f"{share:6.1%}  {per_step:8.2f}  {event.key} {shapes}")


if __name__ == "__main__":
    main()
