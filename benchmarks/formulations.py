"""Equivalent formulations of the slow layers, timed against the layers as they are.

    python -m benchmarks.formulations [--arch superres conv] [--rounds 12] [--steps 5]
        [--try phase-transposed phase-transposed-single-output single-output-fold nhwc-flatten]

Each formulation computes what the layer computes, from the same parameters, with
the sums in another order: a transposed convolution (kernel 4, stride 2, padding 1)
as one 2x2 convolution with four times the output channels followed by an
interleave of its four phases (every such layer, or only one to a single output
channel); a convolution to a single output channel as a matrix
product to its nine taps followed by col2im; the Conv AE family's flatten to and
from 128x7x7 read in the channels-last order the convolutions leave, with the
linear layer's weight permuted instead of the activations. For each, two copies of
the model with the same weights train in one process, alternating rounds of
`--steps` steps of train.batch_size in the train stage's way (channels-last, fused Adam,
freed memory kept), so both see the same machine; it prints the median step time of
each and their ratio, and the largest difference between the two models' outputs
before training. Nothing here is used by the stages: a formulation earns its place
there only by a ratio clearly below 1.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
import types

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.settings import params_model, settings
from stages.common.models.allocator import keep_freed_memory_for_reuse
from stages.common.models.training import adam, fast_layout, train_epoch

# Which taps of a kernel-4, stride-2, padding-1 transposed convolution an output phase
# (even or odd row) reads, for the input rows (m-1, m) and (m, m+1) respectively.
PHASE_TAPS = torch.tensor([[3, 1], [2, 0]])


def phase_transposed_forward(self: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    cin, cout = self.weight.shape[:2]
    # (Cin, Cout, 4, 4) -> (Cout * 4 phases, Cin, 2, 2)
    weight = self.weight[:, :, PHASE_TAPS][:, :, :, :, PHASE_TAPS]
    weight = weight.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, 2, 2)
    y = F.conv2d(x, weight, None, padding=1).view(n, cout, 2, 2, h + 1, w + 1)
    rows = [torch.stack([y[:, :, ry, rx, ry:ry + h, rx:rx + w] for rx in (0, 1)], -1) for ry in (0, 1)]
    out = torch.stack(rows, -2).permute(0, 1, 2, 4, 3, 5).reshape(n, cout, 2 * h, 2 * w)
    return out + self.bias.view(1, -1, 1, 1)


def single_output_fold_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    n, cin, h, w = x.shape
    taps = x.permute(0, 2, 3, 1).reshape(-1, cin) @ self.weight[0].flip(1, 2).reshape(cin, 9)
    out = F.fold(taps.view(n, h * w, 9).transpose(1, 2), (h, w), kernel_size=3, padding=1)
    return out + self.bias.view(1, 1, 1, 1)


def nhwc_flatten(self, x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # a view when x is channels-last


def linear_from_nhwc(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    c, h, w = self.input_chw
    weight = self.weight.view(-1, c, h, w).permute(0, 2, 3, 1).reshape(self.weight.shape[0], -1)
    return F.linear(x, weight, self.bias)


def linear_to_nhwc(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    c, h, w = self.output_chw
    weight = self.weight.view(c, h, w, -1).permute(1, 2, 0, 3).reshape(c * h * w, -1)
    bias = self.bias.view(c, h, w).permute(1, 2, 0).reshape(-1)
    return F.linear(x, weight, bias)


def nhwc_unflatten(self, x: torch.Tensor) -> torch.Tensor:
    c, h, w = self.unflattened_size
    return x.view(x.shape[0], h, w, c).permute(0, 3, 1, 2)  # channels-last, no copy


def apply(model: nn.Module, formulation: str) -> int:
    """Rebind the forward of the layers `formulation` covers; returns how many it changed."""
    changed = 0
    for module in model.modules():
        if formulation in ("phase-transposed", "phase-transposed-single-output") \
                and isinstance(module, nn.ConvTranspose2d) and module.kernel_size == (4, 4) \
                and module.stride == (2, 2) and module.padding == (1, 1) \
                and (formulation == "phase-transposed" or module.out_channels == 1):
            module.forward = types.MethodType(phase_transposed_forward, module)
            changed += 1
        elif formulation == "single-output-fold" and type(module) is nn.Conv2d and module.out_channels == 1 \
                and module.kernel_size == (3, 3) and module.padding == (1, 1) and module.stride == (1, 1):
            module.forward = types.MethodType(single_output_fold_forward, module)
            changed += 1
        elif formulation == "nhwc-flatten" and isinstance(module, nn.Sequential):
            layers = list(module)
            for before, after in zip(layers, layers[1:]):
                if isinstance(before, nn.Flatten) and isinstance(after, nn.Linear) and after.in_features == 6272:
                    after.input_chw = (128, 7, 7)
                    before.forward = types.MethodType(nhwc_flatten, before)
                    after.forward = types.MethodType(linear_from_nhwc, after)
                    changed += 1
                if isinstance(before, nn.Linear) and isinstance(after, nn.Unflatten) and before.out_features == 6272:
                    before.output_chw = after.unflattened_size
                    before.forward = types.MethodType(linear_to_nhwc, before)
                    after.forward = types.MethodType(nhwc_unflatten, after)
                    changed += 1
    return changed


def compare(arch: str, formulation: str, rounds: int, steps: int) -> dict | None:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    as_is = fast_layout(params_model(arch), cpu)
    batch = settings().batch_size
    reformulated = copy.deepcopy(as_is)
    if not apply(reformulated, formulation):
        return None
    x = torch.rand(batch * steps, 1, 28, 28)
    with torch.no_grad():
        as_is.eval(), reformulated.eval()
        difference = (as_is(x[:batch]) - reformulated(x[:batch])).abs().max().item()
    models = {"as is": as_is, formulation: reformulated}
    optimizers = {name: adam(model, settings().lr) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(rounds + 1):
        for name in (list(models) if round_ % 2 == 0 else list(reversed(models))):
            started = time.perf_counter()
            train_epoch(models[name], optimizers[name], x, batch, torch.Generator().manual_seed(round_), "fp32")
            if round_:  # the first round warms both up
                times[name].append((time.perf_counter() - started) / steps)
    base, new = (statistics.median(times[name]) for name in models)
    return {"as_is_ms": base * 1e3, "reformulated_ms": new * 1e3, "ratio": new / base,
            "max_output_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=["superres", "conv"])
    parser.add_argument("--try", dest="formulations", nargs="+",
                        default=["phase-transposed", "phase-transposed-single-output", "single-output-fold",
                                 "nhwc-flatten"])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory_for_reuse()
    print(f"{'architecture':<10} {'formulation':<30} {'as is ms':>9} {'new ms':>8} {'ratio':>6}  "
          "max |output difference|")
    for arch in args.arch:
        for formulation in args.formulations:
            result = compare(arch, formulation, args.rounds, args.steps)
            if result is None:
                print(f"{arch:<10} {formulation:<30} (no such layer)")
                continue
            print(f"{arch:<10} {formulation:<30} {result['as_is_ms']:9.1f} {result['reformulated_ms']:8.1f} "
                  f"{result['ratio']:6.3f}  {result['max_output_difference']:.1e}", flush=True)


if __name__ == "__main__":
    main()
