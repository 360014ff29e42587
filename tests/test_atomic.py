"""Atomic writers: complete files or none, stale temporaries cleaned, byte-stable npz and JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stages.common.outputs.atomic import atomic_dir, atomic_path, npz_bytes, write_bytes, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "model.pt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert json.loads(target.read_text()) == {"a": 1}


def test_stale_temporaries_from_a_killed_run_are_removed(tmp_path):
    (tmp_path / ".m.json.tmp-abc").write_text("stale")
    (tmp_path / ".raw.tmp-xyz").mkdir()
    write_json(tmp_path / "m.json", {})
    with atomic_dir(tmp_path / "raw") as tmp:
        (tmp / "f").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "raw"]


def test_atomic_dir_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "raw"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise RuntimeError
    assert [p.name for p in target.iterdir()] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_npz_is_byte_identical_and_loadable(tmp_path):
    arrays = {"z": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.array([1, 2, 3], np.uint8)}
    write_bytes(tmp_path / "a.npz", npz_bytes(**arrays))
    write_bytes(tmp_path / "b.npz", npz_bytes(**arrays))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as f:
        np.testing.assert_array_equal(f["z"], arrays["z"])
        np.testing.assert_array_equal(f["y"], arrays["y"])


def test_json_is_sorted_with_newline(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
