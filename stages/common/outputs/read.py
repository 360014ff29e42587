"""Reading what earlier stages wrote, with one-line errors naming the file and the stage to rerun.

A file damaged between stages (truncated, from another configuration, deleted,
unreadable, holding NaN, nested 100,000 deep) must not end in a traceback deep inside
numpy, torch or a library call: each reader checks what it hands on (shapes, finite
values, label ranges, keys, columns, picture sizes) and names the file and the stage
that writes it.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from stages.common.errors import PipelineError
from stages.common.outputs.layout import prepared_path

# What can go wrong reading a damaged .npz: a short zip, bad pickle data, bad arrays.
DAMAGE = (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile)


# A metrics file or a stage's CSV is kilobytes; a picture this pipeline draws, a few megapixels.
MAX_TEXT_BYTES = 16 << 20
MAX_PICTURE_PIXELS = 40_000_000


def damaged(path: Path, stage: str, why: str) -> PipelineError:
    return PipelineError(f"{path}: {why}; rerun its stage: dvc repro -f {stage}")


def unreadable(path: Path, err: OSError) -> PipelineError:
    """A file that exists but cannot be read is not damaged: say what is wrong with it."""
    if isinstance(err, PermissionError):
        return PipelineError(f"{path}: not readable (permissions); fix them and rerun")
    return PipelineError(f"{path}: cannot be read ({err.strerror or err})")


def check_readable(path: Path, stage: str) -> None:
    if not path.is_file():
        raise damaged(path, stage, "missing")
    if not os.access(path, os.R_OK):
        raise unreadable(path, PermissionError())


def read_npz(path: str | os.PathLike, keys: tuple[str, ...], stage: str) -> dict:
    """The arrays `keys` of an .npz file, or PipelineError naming the file and `stage`."""
    path = Path(path)
    check_readable(path, stage)
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
    """An architecture's latents file: finite train and test latents of one width, labels to match."""
    stage, path = f"latents@{arch}", Path(path)
    data = read_npz(path, ("z_train", "y_train", "z_test", "y_test", "class_names"), stage)
    z_train, z_test = data["z_train"], data["z_test"]
    if (z_train.ndim != 2 or z_test.ndim != 2 or z_train.shape[1] != z_test.shape[1] or not len(z_train)
            or not len(z_test) or not z_train.shape[1]):
        raise damaged(path, stage, f"holds latents of shapes {z_train.shape} and {z_test.shape}")
    if len(data["y_train"]) != len(z_train) or len(data["y_test"]) != len(z_test):
        raise damaged(path, stage, "holds latents and labels of different counts")
    if not (np.issubdtype(z_train.dtype, np.floating) and np.isfinite(z_train).all() and np.isfinite(z_test).all()):
        raise damaged(path, stage, "holds latents that are not finite numbers (NaN or infinity)")
    n_classes = len(data["class_names"])
    for key in ("y_train", "y_test"):
        labels = data[key]
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes:
            raise damaged(path, stage, f"holds {key} outside the {n_classes} classes")
    return data


def load_predictions(path: str | os.PathLike, stage: str) -> dict:
    """An SVM's predicted test labels and the true ones (data/predictions/<name>.npz)."""
    data = read_npz(path, ("predicted", "y_test"), stage)
    if data["predicted"].shape != data["y_test"].shape or data["predicted"].ndim != 1:
        raise damaged(Path(path), stage, f"holds {data['predicted'].shape} predictions for "
                                         f"{data['y_test'].shape} labels")
    return data


def _read_text(path: Path, stage: str) -> str:
    check_readable(path, stage)
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise damaged(path, stage, f"{path.stat().st_size:,} bytes, far more than this stage writes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise damaged(path, stage, "not UTF-8 text") from None
    except OSError as err:
        raise unreadable(path, err) from None


def read_csv(path: str | os.PathLike, stage: str, numeric: tuple[str, ...] = (), text: tuple[str, ...] = ()):
    """A CSV table written by `stage` holding columns `numeric` (finite numbers) and `text`, as a DataFrame."""
    import io

    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(io.StringIO(_read_text(path, stage)))
    except (ValueError, pd.errors.ParserError) as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None
    missing = [column for column in (*numeric, *text) if column not in frame.columns]
    if missing:
        raise damaged(path, stage, f"lacks the column(s) {', '.join(missing)}")
    if frame.empty:
        raise damaged(path, stage, "holds no rows")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            raise damaged(path, stage, f"holds values in column {column} that are not finite numbers")
    return frame


def read_json(path: str | os.PathLike, stage: str, numbers_at: tuple[str, ...] = ()) -> dict:
    """A JSON object written by `stage` with a finite number at each key of `numbers_at`."""
    path = Path(path)
    try:
        value = json.loads(_read_text(path, stage))
    except RecursionError:
        raise damaged(path, stage, "nested far deeper than any metrics file") from None
    except ValueError as err:
        raise damaged(path, stage, f"not valid JSON ({type(err).__name__})") from None
    if not isinstance(value, dict):
        raise damaged(path, stage, "not a JSON object")
    check_numbers(value, path, stage, numbers_at)
    return value


def check_numbers(value: dict, path: Path, stage: str, keys: tuple[str, ...]) -> None:
    """A finite number at each of `keys` of a JSON object read from `path`."""
    for key in keys:
        number = value.get(key)
        if not isinstance(number, numbers.Real) or isinstance(number, bool) or not math.isfinite(number):
            raise damaged(Path(path), stage, f"lacks a finite number at {key!r}")


def picture_size(path: str | os.PathLike, stage: str) -> tuple[int, int]:
    """(width, height) of a PNG from its header alone, refusing what this pipeline never draws."""
    path = Path(path)
    check_readable(path, stage)
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as err:
        raise unreadable(path, err) from None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise damaged(path, stage, "not a PNG picture")
    width, height = struct.unpack(">II", head[16:24])
    if not 0 < width * height <= MAX_PICTURE_PIXELS:
        raise damaged(path, stage, f"a {width:,} x {height:,} picture, not one this pipeline draws")
    return width, height
