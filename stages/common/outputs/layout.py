"""Where each stage's inputs and outputs live."""
from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("data/models")
LATENTS_DIR = Path("data/latents")
PREDICTIONS_DIR = Path("data/predictions")
ERRORS_DIR = Path("data/errors")
METRICS_DIR = Path("metrics")
# Facts about a run (times, memory, sizes, device): recorded, but not DVC metrics,
# so `dvc metrics show/diff` and `dvc exp show` list results only.
RUN_DIR = METRICS_DIR / "run"
PLOTS_DIR = Path("plots")


def model_path(arch: str) -> Path:
    return MODELS_DIR / f"{arch}.pt"


def latents_path(arch: str) -> Path:
    return LATENTS_DIR / f"{arch}.npz"


def prepared_path(split: str) -> Path:
    return PREPARED_DIR / f"{split}.npz"


def predictions_path(name: str) -> Path:
    """data/predictions/<name>.npz: an SVM's predicted test labels and the true ones, for paired tests."""
    return PREDICTIONS_DIR / f"{name}.npz"


def errors_path(arch: str) -> Path:
    """data/errors/<arch>.npz: each test image's reconstruction and denoising error, for intervals over images."""
    return ERRORS_DIR / f"{arch}.npz"


def metrics_path(kind: str, name: str) -> Path:
    """metrics/<kind>_<name>.json, e.g. metrics/train_conv.json: results only."""
    return METRICS_DIR / f"{kind}_{name}.json"


def run_path(kind: str, name: str) -> Path:
    """metrics/run/<kind>_<name>.json: what the run cost and on what it ran."""
    return RUN_DIR / f"{kind}_{name}.json"


def plot_path(kind: str, name: str, suffix: str = "png") -> Path:
    """plots/<kind>/<name>.<suffix>, e.g. plots/confusion/conv.png."""
    return PLOTS_DIR / kind / f"{name}.{suffix}"
