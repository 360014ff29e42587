"""Choosing the compute device and precision, and seeding every random number generator."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from stages.common.errors import PipelineError


def resolve_device(name: str) -> torch.device:
    """Map train.device (auto, cpu, cuda, mps) to a torch device; auto prefers CUDA, then MPS."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("params.yaml: train.device is 'cuda' but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PipelineError("params.yaml: train.device is 'mps' but Apple MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 matrix instructions (AVX-512 BF16 or AMX)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse bf16 where it would be emulated (slow, and not what the user asked for)."""
    if precision != "bf16":
        return
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return
    if device.type == "cpu" and cpu_supports_bf16():
        return
    if device.type == "cpu":
        raise PipelineError(
            "params.yaml: train.precision is 'bf16' but this CPU has neither AVX-512 BF16 nor AMX; use 'fp32'"
        )
    raise PipelineError(
        f"params.yaml: train.precision is 'bf16' but device {device.type} does not support it; use 'fp32'"
    )


def autocast(precision: str, device: torch.device):
    """The autocast context for `precision` (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int) -> int:
    """Give torch `threads` intra-op threads (train.threads); returns the number set.

    Always a number the params name, never "every core": torch's CPU kernels split
    their sums by thread, so the trained weights depend on the count.
    """
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, ask torch for deterministic kernels where it has them, and
    flush denormal floats to zero on the CPU.

    Denormals (below 1.2e-38) appear as training converges, in gradients and in Adam's
    second moments, and x86 CPUs compute with them up to a hundred times slower, so
    the epochs after the first slowed down. Flushing them changes nothing visible,
    and every torch stage does it, so the arithmetic is the same in each.
    """
    torch.set_flush_denormal(True)
    # cuBLAS needs this set before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    use_deterministic_algorithms()
    torch.backends.cudnn.benchmark = False


def use_deterministic_algorithms() -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True), less its import of torch._inductor.

    The public call also sets the flag of torch's compiler, importing it to do so:
    more than a second of start-up in every torch stage, for a compiler no stage uses. The flag
    the kernels read is set the same way (torch.are_deterministic_algorithms_enabled()
    says so, and the tests check it).
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None:  # another torch than the pinned one
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        set_flag(True, warn_only=True)
