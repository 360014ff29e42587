"""Compare two runs' outputs: every file byte for byte, model files by their weights, run facts skipped.

    python -m tools.compare_runs RUN_A RUN_B    (two project folders, each after `dvc repro`)

For showing that a change to the code left every result as it was: the models'
weights (a checkpoint's format may change around them), latents, prepared data,
metrics, loss and t-SNE tables and pictures. Run facts (metrics/run/: times, memory)
and the downloaded files are left out. Exits 1 when anything differs.

Files are hashed in chunks, never read whole; model files are opened as the stages
open them (a torch zip archive, `weights_only=True`), and one that is not a model is
named as such, never loaded another way.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from stages.common.errors import PipelineError, run_stage

COMPARED = ("data", "metrics", "plots")
CHUNK_BYTES = 1 << 20


def outputs(root: Path) -> list[Path]:
    """The compared outputs under `root`, relative to it."""
    found = []
    for top in COMPARED:
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and rel.parts[:2] not in (("metrics", "run"), ("data", "raw")):
                found.append(rel)
    return found


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
                sha.update(chunk)
    except OSError as err:
        raise PipelineError(f"{path}: cannot be read ({err.strerror or err})") from None
    return sha.hexdigest()


def weights(path: Path) -> dict:
    """A model file's state dict, read as the stages read it; PipelineError naming the file otherwise."""
    # The stages' own reader of model files (zip archive only, weights_only=True, one-line errors).
    from stages.common.models.checkpoint import _read as read_model_file

    saved = read_model_file(path, "train")
    state = saved.get("state_dict")
    if not isinstance(state, dict):
        raise PipelineError(f"{path}: holds no state dict of tensors; not a model file of this project")
    return state


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(
        isinstance(wa[key], torch.Tensor) and isinstance(wb[key], torch.Tensor) and wa[key].shape == wb[key].shape
        and torch.equal(wa[key], wb[key]) for key in wa)


def compare(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """(identical, different) outputs of run `a` against run `b`."""
    same, differ = [], []
    for rel in outputs(a):
        if not (b / rel).is_file():
            differ.append(f"{rel} (missing in {b})")
        elif rel.suffix == ".pt":
            (same if same_weights(a / rel, b / rel) else differ).append(f"{rel} (weights)")
        else:
            (same if digest(a / rel) == digest(b / rel) else differ).append(str(rel))
    return same, differ


def main(argv: list[str]) -> None:
    if len(argv) != 2 or not all(Path(arg).is_dir() for arg in argv):
        raise PipelineError(f"usage: python -m tools.compare_runs RUN_A RUN_B, two project folders; got {argv}")
    same, differ = compare(Path(argv[0]), Path(argv[1]))
    print(f"identical: {len(same)}; different: {len(differ)}")
    for item in differ:
        print(f"  differs: {item}")
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main, "compare_runs", sys.argv[1:])
