"""Reading what earlier stages wrote, with one-line errors naming the file and the stage to rerun.

Every file read here is input, as strictly checked as the user's: it may come from
an earlier stage, DVC's run-cache, a DVC remote or another machine's experiment,
and this process did not write it. A file that is damaged, from another
configuration, or crafted (truncated, holding NaN, nested 100,000 deep, arrays that
inflate to gigabytes, class names that are not a dataset's) must not end in a
traceback deep inside numpy, torch or a library call, nor allocate more than its
stage would: each reader checks what it hands on (an .npz array's header before its
data, shapes, dtypes, finite values, label ranges, class names, keys, columns,
picture sizes) and names the file and the stage that writes it.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common.data.datasets import DATASETS, IMAGE_SIDE, MAX_IMAGES, N_CLASSES, PIXELS
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


# What any array of a stage's .npz may be, checked from its header before a byte of
# data is decompressed: a count of images is at most what an IDX file may hold, a
# width at most the pixels of an image, a name at most MAX_NAME_CHARS characters.
IMAGES, WIDTH = "images", "width"
MAX_NAME_CHARS = 64
MAX_NPY_HEADER_BYTES = 10_000
# And all of a file's arrays together at most this many bytes, from their headers: a stage
# holds a copy or two of what it reads, and no input may take it past 1.5 GB. The largest
# file the pipeline writes (latents of 70,000 images at the 784 latent dimensions) is 220 MB.
MAX_NPZ_BYTES = 400 << 20


@dataclass(frozen=True)
class ArraySpec:
    """What one array of an .npz must be: dtype kinds ('u', 'i', 'f', 'U'), at most `itemsize` bytes an item
    (strings: MAX_NAME_CHARS characters), and a shape whose entries are exact sizes, IMAGES (0 to MAX_IMAGES) or
    WIDTH (0 to PIXELS). The largest array a spec admits is what its stage writes for the largest dataset."""

    kinds: str
    shape: tuple
    itemsize: int = 8

    def refusal(self, shape: tuple, dtype: np.dtype) -> str | None:
        """Why an array of this header does not fit, or None."""
        if dtype.kind not in self.kinds or dtype.hasobject:
            return f"dtype {dtype}"
        if dtype.kind == "U" and dtype.itemsize > 4 * MAX_NAME_CHARS:
            return f"strings of up to {dtype.itemsize // 4:,} characters"
        if dtype.kind != "U" and dtype.itemsize > self.itemsize:
            return f"dtype {dtype}"
        if len(shape) != len(self.shape):
            return f"shape {shape}"
        for size, expected in zip(shape, self.shape):
            limit = MAX_IMAGES if expected == IMAGES else PIXELS if expected == WIDTH else None
            if (limit is None and size != expected) or (limit is not None and not 0 <= size <= limit):
                return f"shape {shape}"
        return None


def _npy_header(member) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(member, max_header_size=MAX_NPY_HEADER_BYTES)


def read_npz(path: str | os.PathLike, specs: dict[str, ArraySpec], stage: str) -> dict:
    """The arrays of `specs` from an .npz file, each header checked against its spec before its data is read.

    A file from another version, a damaged one, or a crafted one (a 2 MB file whose
    arrays inflate to gigabytes, pickled objects, names a million characters long)
    ends in PipelineError naming the file and `stage`, with nothing large allocated.
    """
    path = Path(path)
    check_readable(path, stage)
    arrays, total = {}, 0
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [key for key in specs if f"{key}.npy" not in names]
            if missing:
                raise damaged(path, stage, f"lacks {', '.join(missing)} (written by another version?)")
            for key, spec in specs.items():
                with archive.open(f"{key}.npy") as member:
                    shape, _, dtype = _npy_header(member)
                why = spec.refusal(shape, dtype)
                if why:
                    raise damaged(path, stage, f"holds {key} of {why}, not what its stage writes")
                total += math.prod(shape) * dtype.itemsize
            if total > MAX_NPZ_BYTES:
                raise damaged(path, stage, f"its arrays would take {total:,} bytes, more than any stage writes")
            for key in specs:
                with archive.open(f"{key}.npy") as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except PipelineError:
        raise
    except DAMAGE as err:
        raise damaged(path, stage, f"damaged ({type(err).__name__})") from None
    return arrays


CLASS_NAMES = ArraySpec("U", (N_CLASSES,))
KNOWN_CLASS_NAMES = {spec.class_names for spec in DATASETS.values()}


def check_class_names(data: dict, path: Path, stage: str) -> list[str]:
    """The class names of a prepared or latents file: exactly one dataset's, in its order."""
    names = tuple(str(name) for name in data["class_names"])
    if names not in KNOWN_CLASS_NAMES:
        raise damaged(path, stage, "holds class names that are not those of a known dataset")
    return list(names)


def load_prepared(split: str) -> dict:
    """One prepared split: uint8 images (n, 28, 28), uint8 labels (n,), class_names."""
    path = prepared_path(split)
    data = read_npz(path, {"images": ArraySpec("u", (IMAGES, IMAGE_SIDE, IMAGE_SIDE), 1),
                           "labels": ArraySpec("u", (IMAGES,), 1), "class_names": CLASS_NAMES}, "prepare")
    images, labels = data["images"], data["labels"]
    if images.dtype != np.uint8 or labels.dtype != np.uint8 or len(labels) != len(images) or not len(images):
        raise damaged(path, "prepare", f"holds images {images.shape} {images.dtype}, labels {labels.shape}")
    check_class_names(data, path, "prepare")
    if labels.max() >= N_CLASSES:
        raise damaged(path, "prepare", f"holds labels outside the {N_CLASSES} classes")
    return data


def load_latents(path: str | os.PathLike, arch: str) -> dict:
    """An architecture's latents file: finite train and test latents of one width, labels to match."""
    stage, path = f"latents@{arch}", Path(path)
    # float32, as the latents stage writes them: at most 250,000 x 784 x 4 bytes = 784 MB.
    latents, labels = ArraySpec("f", (IMAGES, WIDTH), 4), ArraySpec("ui", (IMAGES,), 1)
    data = read_npz(path, {"z_train": latents, "y_train": labels, "z_test": latents, "y_test": labels,
                           "class_names": CLASS_NAMES}, stage)
    z_train, z_test = data["z_train"], data["z_test"]
    if z_train.shape[1] != z_test.shape[1] or not len(z_train) or not len(z_test) or not z_train.shape[1]:
        raise damaged(path, stage, f"holds latents of shapes {z_train.shape} and {z_test.shape}")
    if len(data["y_train"]) != len(z_train) or len(data["y_test"]) != len(z_test):
        raise damaged(path, stage, "holds latents and labels of different counts")
    if not (np.isfinite(z_train).all() and np.isfinite(z_test).all()):
        raise damaged(path, stage, "holds latents that are not finite numbers (NaN or infinity)")
    check_class_names(data, path, stage)
    for key in ("y_train", "y_test"):
        if data[key].min() < 0 or data[key].max() >= N_CLASSES:
            raise damaged(path, stage, f"holds {key} outside the {N_CLASSES} classes")
    return data


def load_predictions(path: str | os.PathLike, stage: str) -> dict:
    """An SVM's predicted test labels and the true ones (data/predictions/<name>.npz)."""
    labels = ArraySpec("u", (IMAGES,), 1)
    data = read_npz(path, {"predicted": labels, "y_test": labels}, stage)
    if data["predicted"].shape != data["y_test"].shape:
        raise damaged(Path(path), stage, f"holds {data['predicted'].shape} predictions for "
                                         f"{data['y_test'].shape} labels")
    if len(data["y_test"]) and max(data["predicted"].max(), data["y_test"].max()) >= N_CLASSES:
        raise damaged(Path(path), stage, f"holds labels outside the {N_CLASSES} classes")
    return data


def load_errors(path: str | os.PathLike, arch: str) -> dict:
    """An architecture's per-image test errors (data/errors/<arch>.npz): finite, non-negative, one per image."""
    stage, path = f"train@{arch}", Path(path)
    per_image = ArraySpec("f", (IMAGES,))
    data = read_npz(path, {"test_mse": per_image, "denoise_mse": per_image}, stage)
    if len(data["test_mse"]) != len(data["denoise_mse"]) or not len(data["test_mse"]):
        raise damaged(path, stage, "holds per-image errors of different or no counts")
    if not all(np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all() for values in data.values()):
        raise damaged(path, stage, "holds per-image errors outside [0, 1] (NaN, infinity or negative)")
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
        frame = pd.read_csv(io.StringIO(_read_text(path, stage)), dtype={column: str for column in text},
                            keep_default_na=False)
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
