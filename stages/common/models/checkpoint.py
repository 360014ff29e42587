"""Self-describing model files: the weights together with what builds the model that takes them.

A checkpoint is a plain dict saved with `torch.save`: the format, the architecture
id, the constructor's arguments (`latent_dim` and the architecture's settings) and
the state dict. `load_checkpoint(path)` rebuilds the model from the file alone;
with `expected` it also says, in one line, when the file was trained with other
settings than those asked for. Only plain Python values and tensors are stored,
so `torch.load(path, weights_only=True)` reads it.
"""
from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stages.common.models.nets import Autoencoder, build_model
from stages.common.outputs.read import DAMAGE, check_readable, damaged

FORMAT = "ae-compare-checkpoint/1"


@dataclass(frozen=True)
class ModelSpec:
    """Everything that builds an architecture's model: `build_model(arch, latent_dim, settings)`."""

    arch: str
    latent_dim: int
    settings: dict = field(default_factory=dict)

    def build(self) -> Autoencoder:
        return build_model(self.arch, self.latent_dim, self.settings)

    def describe(self) -> str:
        return ", ".join(f"{key} {value}" for key, value in {"latent_dim": self.latent_dim, **self.settings}.items())


def checkpoint_bytes(spec: ModelSpec, model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "arch": spec.arch, "latent_dim": spec.latent_dim,
                "settings": dict(spec.settings), "state_dict": model.state_dict()}, buffer)
    return buffer.getvalue()


def _read(path: Path, stage: str) -> dict:
    check_readable(path, stage)
    # torch.save writes a zip archive; anything else (a bare pickle, a legacy file) is not one of ours, and
    # is refused before torch's unpickler sees it (and warns about its protocol).
    if not zipfile.is_zipfile(path):
        raise damaged(path, stage, "not a model file (not the zip archive torch.save writes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except (*DAMAGE, pickle.UnpicklingError) as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise damaged(path, stage, f"not a model file of this version (expected format {FORMAT})")
    return saved


def load_checkpoint(path: str | os.PathLike, expected: ModelSpec | None = None) -> tuple[ModelSpec, Autoencoder]:
    """The spec and the model of a checkpoint, weights loaded; PipelineError naming the file otherwise.

    With `expected`, a checkpoint of another architecture or other settings is an error
    that says which values differ.
    """
    path = Path(path)
    stage = f"train@{expected.arch}" if expected else "train"
    saved = _read(path, stage)
    try:
        spec = ModelSpec(saved["arch"], int(saved["latent_dim"]), dict(saved["settings"]))
        stage = f"train@{spec.arch}"
        if expected is not None and spec != expected:
            raise damaged(path, f"train@{expected.arch}",
                          f"trained as {spec.arch} with {spec.describe()}, but params.yaml asks for "
                          f"{expected.arch} with {expected.describe()}")
        model = spec.build()
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise damaged(path, stage, f"does not hold a model this code can build ({first[:200]})") from None
    return spec, model
