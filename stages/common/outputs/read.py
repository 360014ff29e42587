"""Reading what earlier stages wrote, with one-line errors naming the file and the stage to rerun.

A file damaged between stages (truncated, from another configuration, deleted)
must not end in a traceback deep inside numpy or torch.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from stages.common.errors import PipelineError
from stages.common.outputs.layout import prepared_path

# What can go wrong reading a damaged .npz: a short zip, bad pickle data, bad arrays.
DAMAGE = (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile)


def damaged(path: Path, stage: str, why: str) -> PipelineError:
    return PipelineError(f"{path}: {why}; rerun its stage: dvc repro -f {stage}")


def read_npz(path: str | os.PathLike, keys: tuple[str, ...], stage: str) -> dict:
    """The arrays `keys` of an .npz file, or PipelineError naming the file and `stage`."""
    path = Path(path)
    if not path.is_file():
        raise damaged(path, stage, "missing")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [key for key in keys if key not in f.files]
            if missing:
                raise damaged(path, stage, f"lacks {', '.join(missing)} (written by another version?)")
            return {key: f[key] for key in keys}
    except PipelineError:
        raise
    except DAMAGE as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None


def load_prepared(split: str) -> dict:
    """One prepared split: uint8 images (n, 28, 28), uint8 labels (n,), class_names."""
    path = prepared_path(split)
    data = read_npz(path, ("images", "labels", "class_names"), "prepare")
    images, labels = data["images"], data["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
        raise damaged(path, "prepare", f"holds images {images.shape} {images.dtype}, labels {labels.shape}")
    return data


def load_latents(path: str | os.PathLike, arch: str) -> dict:
    """An architecture's latents file: train and test latents of one width, labels to match."""
    stage = f"latents@{arch}"
    data = read_npz(path, ("z_train", "y_train", "z_test", "y_test", "class_names"), stage)
    z_train, z_test = data["z_train"], data["z_test"]
    if z_train.ndim != 2 or z_test.ndim != 2 or z_train.shape[1] != z_test.shape[1]:
        raise damaged(Path(path), stage, f"holds latents of shapes {z_train.shape} and {z_test.shape}")
    if len(data["y_train"]) != len(z_train) or len(data["y_test"]) != len(z_test):
        raise damaged(Path(path), stage, "holds latents and labels of different counts")
    return data


def load_predictions(path: str | os.PathLike, stage: str) -> dict:
    """An SVM's predicted test labels and the true ones (data/predictions/<name>.npz)."""
    data = read_npz(path, ("predicted", "y_test"), stage)
    if data["predicted"].shape != data["y_test"].shape or data["predicted"].ndim != 1:
        raise damaged(Path(path), stage, f"holds {data['predicted'].shape} predictions for "
                                         f"{data['y_test'].shape} labels")
    return data


def read_csv(path: str | os.PathLike, stage: str):
    """A CSV table written by `stage`, as a pandas DataFrame, or PipelineError naming the file and `stage`."""
    import pandas as pd

    path = Path(path)
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise damaged(path, stage, "missing") from None
    except (ValueError, OSError) as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None


def read_json(path: str | os.PathLike, stage: str) -> dict:
    """A JSON object written by `stage`, or PipelineError naming the file and `stage`."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(path, stage, "missing") from None
    except (OSError, ValueError) as err:
        raise damaged(path, stage, f"not valid JSON ({type(err).__name__})") from None
    if not isinstance(value, dict):
        raise damaged(path, stage, "not a JSON object")
    return value
