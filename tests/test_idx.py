"""IDX reading: good files round-trip; each kind of damage is one line naming the file."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from stages.common.data.idx import file_digests, read_images, read_labels, read_split
from stages.common.errors import PipelineError
from tests.conftest import MNIST_SMALL, make_images
from tests.idxfiles import write_idx_gz


def test_round_trip(tmp_path):
    images, labels = make_images(50)
    write_idx_gz(tmp_path / "i.gz", images)
    write_idx_gz(tmp_path / "l.gz", labels)
    got_images, got_labels = read_split(tmp_path / "i.gz", tmp_path / "l.gz")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.skipif(not MNIST_SMALL.is_dir(), reason="shared MNIST sample not present")
def test_reads_real_mnist_sample():
    images, labels = read_split(MNIST_SMALL / "t10k-images-idx3-ubyte.gz", MNIST_SMALL / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (2000, 28, 28) and labels.shape == (2000,)
    assert set(np.unique(labels)) == set(range(10))


def write_raw_gz(path, payload: bytes):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(payload)
    return path


def expect_error(fn, path, pattern):
    with pytest.raises(PipelineError, match=pattern) as err:
        fn(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    expect_error(read_images, tmp_path / "nope.gz", "file missing")


def test_empty_file(tmp_path):
    (tmp_path / "e.gz").write_bytes(b"")
    expect_error(read_images, tmp_path / "e.gz", "file is empty")


def test_not_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"\x00\x00\x08\x03 plain bytes")
    expect_error(read_images, tmp_path / "x.gz", "not a gzip file")


def test_truncated_gzip_stream(tmp_path):
    images, _ = make_images(20)
    write_idx_gz(tmp_path / "i.gz", images)
    data = (tmp_path / "i.gz").read_bytes()
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    expect_error(read_images, tmp_path / "t.gz", "truncated")


def test_wrong_magic_for_images(tmp_path):
    _, labels = make_images(20)
    write_idx_gz(tmp_path / "l.gz", labels)
    expect_error(read_images, tmp_path / "l.gz", r"magic number is 0x00000801; expected 0x00000803")


def test_wrong_magic_for_labels(tmp_path):
    images, _ = make_images(20)
    write_idx_gz(tmp_path / "i.gz", images)
    expect_error(read_labels, tmp_path / "i.gz", r"magic number is 0x00000803; expected 0x00000801")


def test_wrong_dimensions(tmp_path):
    write_idx_gz(tmp_path / "i.gz", np.zeros((5, 32, 32), np.uint8))
    expect_error(read_images, tmp_path / "i.gz", "images are 32x32; expected 28x28")


def test_truncated_payload(tmp_path):
    header = struct.pack(">IIII", 0x803, 10, 28, 28)
    write_raw_gz(tmp_path / "i.gz", header + bytes(28 * 28 * 9))
    expect_error(read_images, tmp_path / "i.gz", r"payload is 7056 bytes; the header promises 10 images")


def test_label_out_of_range(tmp_path):
    write_idx_gz(tmp_path / "l.gz", np.array([0, 3, 12, 9], np.uint8))
    expect_error(read_labels, tmp_path / "l.gz", "label 12 at index 2; expected labels 0-9")


def test_counts_disagree(tmp_path):
    images, labels = make_images(20)
    write_idx_gz(tmp_path / "i.gz", images)
    write_idx_gz(tmp_path / "l.gz", labels[:15])
    with pytest.raises(PipelineError, match="holds 20 images but l.gz holds 15 labels"):
        read_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_digests(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digests(tmp_path / "f") == (
        "900150983cd24fb0d6963f7d28e17f72",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    )
