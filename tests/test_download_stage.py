"""The download stage as a user runs it: local folders (good and damaged), mirrors, kills."""
from __future__ import annotations

import gzip
import hashlib
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stages.common.data.datasets import FILE_NAMES
from tests.conftest import MNIST_SMALL, write_idx_folder
from tests.httpserver import refused_url, serve
from tests.idxfiles import write_idx_gz
from tests.stagerun import env, error_line, make_project, stage


def assert_no_output(project: Path):
    data = project / "data"
    assert not (data / "raw").exists()
    assert not data.exists() or list(data.iterdir()) == []


def test_local_folder_copies_validates_and_records_sha256(tmp_path, idx_folder):
    project = make_project(tmp_path / "p", {"data": {"source": str(idx_folder)}})
    stage("download", project, check=True)
    manifest = json.loads((project / "data/raw/manifest.json").read_text())
    assert manifest["splits"] == {"train": 300, "test": 100}
    for name in FILE_NAMES:
        assert (project / "data/raw" / name).read_bytes() == (idx_folder / name).read_bytes()
        info = manifest["files"][name]
        assert info["sha256"] == hashlib.sha256((idx_folder / name).read_bytes()).hexdigest()
        assert info["official_md5"] is False


@pytest.mark.skipif(not (MNIST_SMALL.parent / "mnist-t10k").is_dir(), reason="shared MNIST test set not present")
def test_official_file_is_recognised_by_its_md5(tmp_path):
    source = tmp_path / "src"
    write_idx_folder(source)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (source / name).write_bytes((MNIST_SMALL.parent / "mnist-t10k" / name).read_bytes())
    project = make_project(tmp_path / "p", {"data": {"source": str(source)}})
    stage("download", project, check=True)
    files = json.loads((project / "data/raw/manifest.json").read_text())["files"]
    assert files["t10k-images-idx3-ubyte.gz"]["official_md5"] is True
    assert files["train-images-idx3-ubyte.gz"]["official_md5"] is False


def damage_missing(folder):
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    return "train-labels-idx1-ubyte.gz", "file missing"


def damage_empty(folder):
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    return "t10k-images-idx3-ubyte.gz", "file is empty"


def damage_not_gzip(folder):
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"<html>Not Found</html>")
    return "train-images-idx3-ubyte.gz", "not a gzip file"


def damage_magic(folder):
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    return "t10k-labels-idx1-ubyte.gz", "magic number is 0x00000803; expected 0x00000801"


def damage_dimensions(folder):
    write_idx_gz(folder / "train-images-idx3-ubyte.gz", np.zeros((300, 32, 32), np.uint8))
    return "train-images-idx3-ubyte.gz", "images are 32x32; expected 28x28"


def damage_counts(folder):
    write_idx_gz(folder / "t10k-images-idx3-ubyte.gz", np.zeros((99, 28, 28), np.uint8))
    return "t10k-images-idx3-ubyte.gz", "holds 99 images but t10k-labels-idx1-ubyte.gz holds 100 labels"


def damage_label(folder):
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", np.full(300, 10, np.uint8))
    return "train-labels-idx1-ubyte.gz", "label 10 at index 0; expected labels 0-9"


def damage_payload(folder):
    with gzip.GzipFile(folder / "t10k-images-idx3-ubyte.gz", "wb", mtime=0) as f:
        f.write(struct.pack(">IIII", 0x803, 100, 28, 28) + bytes(28 * 28 * 50))
    return "t10k-images-idx3-ubyte.gz", "payload is 39200 bytes; the header promises 100 images"


@pytest.mark.parametrize("damage", [
    damage_missing, damage_empty, damage_not_gzip, damage_magic, damage_dimensions, damage_counts, damage_label,
    damage_payload,
])
def test_damaged_local_file_is_one_line_naming_it_and_writes_nothing(tmp_path, idx_folder, damage):
    name, reason = damage(idx_folder)
    project = make_project(tmp_path / "p", {"data": {"source": str(idx_folder)}})
    line = error_line(stage("download", project))
    assert str(idx_folder / name) in line and reason in line, line
    assert_no_output(project)


def test_offline_mirrors_fail_at_the_first_file_in_one_line_naming_urls_and_the_way_out(tmp_path):
    dead, other = refused_url(), refused_url()
    project = make_project(tmp_path / "p", {"data": {"mirrors": [dead, other], "retries": 1, "timeout_seconds": 2}})
    proc = stage("download", project)
    line = error_line(proc)
    first = FILE_NAMES[0]
    assert f"could not download {first}" in line and f"{dead}/{first}" in line and f"{other}/{first}" in line
    assert not any(name in proc.stderr for name in FILE_NAMES[1:])  # no time spent on the other files
    assert "data.source" in line
    assert_no_output(project)


# Runs the real stage with the md5 list swapped for that of the toy files, since the
# official MNIST training files cannot be served here.
PATCHED_STAGE = """
import json, sys
from stages.common.data import datasets
from stages.common.errors import run_stage
from stages import download
md5 = json.loads(sys.argv[1])
sizes = {name: 10**8 for name in md5}
datasets.DATASETS["mnist"] = datasets.DatasetSpec("mnist", (), md5, sizes, tuple("0123456789"))
run_stage(download.main, "download", [])
"""


def patched_download(project: Path, md5: dict, **popen):
    args = [sys.executable, "-c", PATCHED_STAGE, json.dumps(md5)]
    return subprocess.Popen(args, cwd=project, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def toy_files(tmp_path):
    folder = write_idx_folder(tmp_path / "toy", n_train=2000, n_test=300)
    files = {name: (folder / name).read_bytes() for name in FILE_NAMES}
    return files, {name: hashlib.md5(body).hexdigest() for name, body in files.items()}


def test_mirrors_fall_through_to_a_good_one_and_the_manifest_says_where(tmp_path):
    files, md5 = toy_files(tmp_path)
    with serve(files) as base:
        mirrors = [refused_url(), f"{base}/m500", f"{base}/badmd5", f"{base}/good"]
        project = make_project(tmp_path / "p", {"data": {"mirrors": mirrors, "retries": 1, "timeout_seconds": 2}})
        proc = patched_download(project, md5)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    manifest = json.loads((project / "data/raw/manifest.json").read_text())
    for name in FILE_NAMES:
        assert manifest["files"][name]["origin"] == f"{base}/good/{name}"
        assert manifest["files"][name]["official_md5"] is True
        assert (project / "data/raw" / name).read_bytes() == files[name]


def test_download_killed_part_way_leaves_nothing_and_a_rerun_completes(tmp_path):
    files, md5 = toy_files(tmp_path)
    with serve(files) as base:
        project = make_project(tmp_path / "p", {"data": {"mirrors": [f"{base}/slow"], "timeout_seconds": 5}})
        proc = patched_download(project, md5)
        deadline = time.time() + 60
        # Kill once the first file is partly on disk.
        while time.time() < deadline and not any((project / "data").glob(".raw.tmp-*/.*.tmp-*")):
            time.sleep(0.05)
        assert any((project / "data").glob(".raw.tmp-*/.*.tmp-*")), "download never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (project / "data/raw").exists()
        rerun = patched_download(project, md5)
        _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert sorted(p.name for p in (project / "data").iterdir()) == ["raw"]  # the killed run's temp is gone
    assert all((project / "data/raw" / name).read_bytes() == body for name, body in files.items())
