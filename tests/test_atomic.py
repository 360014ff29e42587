"""Atomic writers: complete files or none, stale temporaries cleaned, byte-stable npz and JSON, output sets."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stages.common.outputs.atomic import OutputSet, atomic_path, json_text, npz_bytes


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
    target.write_text(json_text({"a": 1}))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert json.loads(target.read_text()) == {"a": 1}


def test_stale_temporaries_from_a_killed_run_are_removed(tmp_path):
    (tmp_path / ".m.json.tmp-abc").write_text("stale")
    (tmp_path / ".raw.tmp-xyz").mkdir()
    outputs = OutputSet([tmp_path / "m.json", tmp_path / "raw"])
    outputs.json(tmp_path / "m.json", {})
    (outputs.folder(tmp_path / "raw") / "f").write_text("x")
    outputs.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "raw"]


def test_a_folder_output_replaces_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "raw"
    first = OutputSet([target])
    (first.folder(target) / "a").write_text("1")
    first.commit()
    second = OutputSet([target])
    (second.folder(target) / "b").write_text("2")
    second.discard()  # the stage failed before its commit
    assert [p.name for p in target.iterdir()] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    third = OutputSet([target])
    (third.folder(target) / "c").write_text("3")
    third.commit()
    assert [p.name for p in target.iterdir()] == ["c"] and [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_an_undeclared_output_is_a_programming_error(tmp_path):
    outputs = OutputSet([tmp_path / "a.json"])
    with pytest.raises(ValueError, match="not one of this stage's declared outputs"):
        outputs.text(tmp_path / "b.json", "x")
    with pytest.raises(RuntimeError, match="outputs never written"):
        outputs.commit()


def test_npz_is_byte_identical_and_loadable(tmp_path):
    arrays = {"z": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.array([1, 2, 3], np.uint8)}
    (tmp_path / "a.npz").write_bytes(npz_bytes(**arrays))
    assert npz_bytes(**arrays) == (tmp_path / "a.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as f:
        np.testing.assert_array_equal(f["z"], arrays["z"])
        np.testing.assert_array_equal(f["y"], arrays["y"])


def test_json_is_sorted_with_newline_and_refuses_nan():
    assert json_text({"b": 1, "a": 2}) == '{\n  "a": 2,\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        json_text({"a": float("nan")})
