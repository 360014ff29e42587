"""Writing IDX files, for tests that need datasets of their own (the stages only read them)."""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from stages.common.data.idx import IMAGES_MAGIC, LABELS_MAGIC


def write_idx_gz(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip IDX file, as the datasets publish them (mtime 0: stable bytes)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.tobytes())
