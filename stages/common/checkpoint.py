"""Saving and loading trained weights, with one-line errors for a missing or damaged model file."""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from stages.common.artifacts import DAMAGE, damaged
from stages.common.models import Autoencoder, build_model


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def load_model(arch: str, path: str | os.PathLike, latent_dim: int, options: dict | None = None) -> Autoencoder:
    """Build `arch` and load its trained weights from `path` (a state_dict)."""
    path = Path(path)
    stage = f"train@{arch}"
    if not path.is_file():
        raise damaged(path, stage, "missing")
    model = build_model(arch, latent_dim, options)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (*DAMAGE, pickle.UnpicklingError) as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise damaged(path, stage, f"does not fit the model for train.latent_dim {latent_dim} ({first})") from None
    return model
