"""Where each stage's inputs and outputs live, and the <arch> argument of per-architecture stages.

Kept free of torch so that the stages which do not train can import it cheaply.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import PipelineError
from stages.common.params import ARCH_IDS

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("data/models")
LATENTS_DIR = Path("data/latents")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")


def model_path(arch: str) -> Path:
    return MODELS_DIR / f"{arch}.pt"


def latents_path(arch: str) -> Path:
    return LATENTS_DIR / f"{arch}.npz"


def metrics_path(kind: str, name: str) -> Path:
    """metrics/<kind>_<name>.json, e.g. metrics/train_conv.json."""
    return METRICS_DIR / f"{kind}_{name}.json"


def parse_arch(argv: list[str], stage: str) -> str:
    """The single <arch> argument of a per-architecture stage."""
    if len(argv) != 1 or argv[0] not in ARCH_IDS:
        raise PipelineError(f"usage: python -m stages.{stage} <arch>, arch one of {', '.join(ARCH_IDS)}; got {argv}")
    return argv[0]
