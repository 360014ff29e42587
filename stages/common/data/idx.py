"""Reading and validating gzip-compressed IDX files (the MNIST format).

Every check failure raises PipelineError with one line naming the file and what is
wrong, so a bad download or a wrong folder is caught before anything is trained.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from stages.common.data.datasets import IMAGE_SIDE, MAX_IMAGES, N_CLASSES
from stages.common.errors import PipelineError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """Return (md5, sha256) hex digests of a file's bytes."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


CHUNK_BYTES = 1 << 20


def _open_gzip(path: Path):
    if not path.is_file():
        raise PipelineError(f"{path}: file missing")
    if path.stat().st_size == 0:
        raise PipelineError(f"{path}: file is empty")
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except PermissionError:
        raise PipelineError(f"{path}: not readable (permissions); fix and rerun") from None
    except OSError as err:
        raise PipelineError(f"{path}: cannot be read ({err.strerror or err})") from None
    if magic != b"\x1f\x8b":
        raise PipelineError(f"{path}: not a gzip file (expected the .gz file as published)")
    return gzip.open(path, "rb")


def _read_exactly(path: Path, stream, n_bytes: int, promise: str) -> bytes:
    """`n_bytes` decompressed bytes, read in chunks; never more than asked for."""
    buffer = bytearray()
    try:
        while len(buffer) < n_bytes:
            chunk = stream.read(min(CHUNK_BYTES, n_bytes - len(buffer)))
            if not chunk:
                break
            buffer += chunk
    except EOFError:
        raise PipelineError(f"{path}: gzip stream is truncated (incomplete download?)") from None
    except (OSError, zlib.error) as err:
        raise PipelineError(f"{path}: corrupt gzip data ({err})") from None
    if len(buffer) < n_bytes:
        raise PipelineError(f"{path}: payload is {len(buffer)} bytes; the header promises {promise}")
    return bytes(buffer)


def _expect_end(path: Path, stream, promised: str) -> None:
    """Fail if the stream holds more than the header promised (without decompressing all of it)."""
    try:
        extra = stream.read(1)
    except EOFError:
        raise PipelineError(f"{path}: gzip stream is truncated (incomplete download?)") from None
    except (OSError, zlib.error) as err:
        raise PipelineError(f"{path}: corrupt gzip data ({err})") from None
    if extra:
        raise PipelineError(f"{path}: holds more data than the header promises ({promised})")


def _header(path: Path, stream, magic: int, n_dims: int) -> tuple[int, ...]:
    header_size = 4 * (1 + n_dims)
    try:
        raw = _read_exactly(path, stream, header_size, "")
    except PipelineError as err:
        if "payload is" not in str(err):
            raise
        raise PipelineError(f"{path}: too short for an IDX header of {header_size} bytes") from None
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise PipelineError(f"{path}: IDX magic number is 0x{found:08x}; expected 0x{magic:08x} for {kind}")
    return struct.unpack(f">{n_dims}I", raw[4:header_size])


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX images file into a uint8 array of shape (n, 28, 28).

    Reads only what the header declares: a file that decompresses to more is
    refused after one extra byte, so a small gzip bomb costs no memory.
    """
    path = Path(path)
    with _open_gzip(path) as stream:
        count, rows, cols = _header(path, stream, IMAGES_MAGIC, 3)
        if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
            raise PipelineError(f"{path}: images are {rows}x{cols}; expected {IMAGE_SIDE}x{IMAGE_SIDE}")
        if count > MAX_IMAGES:
            raise PipelineError(f"{path}: the header declares {count:,} images; at most {MAX_IMAGES:,} are read")
        expected = count * rows * cols
        payload = _read_exactly(path, stream, expected, f"{count} images ({expected} bytes)")
        _expect_end(path, stream, f"{count} images, {expected} bytes")
    return np.frombuffer(payload, dtype=np.uint8).reshape(count, rows, cols)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX labels file into a uint8 array of shape (n,), checking labels are 0-9."""
    path = Path(path)
    with _open_gzip(path) as stream:
        (count,) = _header(path, stream, LABELS_MAGIC, 1)
        if count > MAX_IMAGES:
            raise PipelineError(f"{path}: the header declares {count:,} labels; at most {MAX_IMAGES:,} are read")
        payload = _read_exactly(path, stream, count, f"{count} labels")
        _expect_end(path, stream, f"{count} labels")
    labels = np.frombuffer(payload, dtype=np.uint8)
    if count and labels.max() >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise PipelineError(f"{path}: label {labels[bad]} at index {bad}; expected labels 0-{N_CLASSES - 1}")
    return labels


def read_split(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file, checking that their counts agree."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise PipelineError(
            f"{images_path}: holds {len(images)} images but {Path(labels_path).name} holds {len(labels)} labels"
        )
    if len(images) == 0:
        raise PipelineError(f"{images_path}: holds no images")
    return images, labels

