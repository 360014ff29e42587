"""Where a training step's time goes: torch.profiler over the project's training loop.

    python -m benchmarks.profile_step [--arch conv] [--steps 20] [--precision bf16] [--compile] [--adam loop]
                                      [--allocator default]

Prints the time of a training step at train.batch_size in the layout and with the
optimizer the train stage uses, and the share of it each operator takes.
`--compile` wraps the model's loss in `torch.compile` first and reports the
compile time, to weigh whether it would repay itself within a stage; `--adam loop`
uses torch's per-parameter Adam instead of the fused one the stage uses;
`--allocator default` leaves glibc's malloc as it comes instead of keeping freed
memory for reuse as the stage does. It also prints the page faults and system time
of the timed steps.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.settings import params_model, settings
from stages.common.models.allocator import keep_freed_memory_for_reuse
from stages.common.models.training import adam, fast_layout, train_epoch

KINDS = [  # (kind, substrings of aten operator names), first match wins
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("convolution", "conv2d", "conv_transpose")),
    ("linear", ("addmm", "aten::mm", "linear", "aten::bmm")),
    ("batch norm", ("batch_norm",)),
    ("optimizer", ("adam", "Optimizer", "_foreach")),
    ("copies and layout", ("copy_", "contiguous", "clone", "to_copy", "index_select", "empty")),
    ("resampling", ("upsample", "interpolate")),
]


def kind_of(name: str) -> str:
    for kind, needles in KINDS:
        if any(needle in name for needle in needles):
            return kind
    return "elementwise and the rest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="conv")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model's loss first")
    parser.add_argument("--adam", default="fused", choices=["fused", "loop"])
    parser.add_argument("--allocator", default="reuse", choices=["reuse", "default"])
    args = parser.parse_args()
    if args.allocator == "reuse":
        keep_freed_memory_for_reuse()

    chosen = settings()
    print(chosen.describe())
    batch, lr = chosen.batch_size, chosen.lr
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    model = fast_layout(params_model(args.arch), cpu)
    optimizer = adam(model, lr) if args.adam == "fused" else torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.rand(batch * args.steps, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    with FlopCounterMode(display=False) as counter:  # counted eagerly, before any compile
        train_epoch(model, optimizer, x[:batch], batch, generator, "fp32")
    flops_per_step = counter.get_total_flops()

    started = time.perf_counter()
    if args.compile:
        model.loss_function = torch.compile(model.loss_function)
    train_epoch(model, optimizer, x[:2 * batch], batch, generator, args.precision)  # warm-up (and compile)
    print(f"warm-up{' and compile' if args.compile else ''}: {time.perf_counter() - started:.1f} s")

    step_seconds = []
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(3):
        started = time.perf_counter()
        train_epoch(model, optimizer, x, batch, generator, args.precision)
        step_seconds.append((time.perf_counter() - started) / args.steps)
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    step_seconds = sorted(step_seconds)[1]  # median of three
    label = f"{args.arch} {args.precision}{' compiled' if args.compile else ''}, {args.adam} Adam, " \
            f"{args.allocator} allocator"
    print(f"{label}: {step_seconds * 1e3:.1f} ms per step of {batch}, {flops_per_step / 1e9:.2f} GFLOP, "
          f"{flops_per_step / step_seconds / 1e9:.0f} GFLOP/s")
    steps = 3 * args.steps
    print(f"per step: {(usage_after.ru_minflt - usage_before.ru_minflt) / steps:.0f} page faults, "
          f"{(usage_after.ru_stime - usage_before.ru_stime) / steps * 1e3:.1f} ms system time")

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        train_epoch(model, optimizer, x, batch, generator, args.precision)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = {}
    for event in events:
        kinds[kind_of(event.key)] = kinds.get(kind_of(event.key), 0) + event.self_cpu_time_total
    print("\nby kind: " + ", ".join(f"{kind} {time_us / total:.0%}"
                                   for kind, time_us in sorted(kinds.items(), key=lambda kv: -kv[1])))
    print(f"\n{'share':>6}  {'ms/step':>8}  operator [input shapes]")
    for event in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:25]:
        share = event.self_cpu_time_total / total
        per_step = event.self_cpu_time_total / 1e3 / args.steps
        shapes = str(event.input_shapes)[:70]
        print(f"{share:6.1%}  {per_step:8.2f}  {event.key} {shapes}")


if __name__ == "__main__":
    main()
