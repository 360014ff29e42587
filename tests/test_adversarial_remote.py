"""Hostile input, round four: what arrives from an earlier stage, the run-cache or a remote is input too.

Each case goes through a real entry point (`python -m stages ...`, `python -m tools...`)
and must end in one line naming the file, with the stage's outputs as they were and
the process well under 1.5 GB. The cases, by family: class names (C), arrays that
would inflate (N), text that reaches a page (H), arguments (A), a crafted file that
travels through a DVC remote from one clone to another (R).
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.stagerun import env, error_line, peak_of, run, stage

MAX_MB = 1500


@pytest.fixture(scope="module")
def project(prepared_project) -> Path:
    """A scratch project with its data prepared and a stacked model's latents made (tests/conftest.py)."""
    return prepared_project


def npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def latents_with(project: Path, **changes) -> dict:
    with np.load(project / "data/latents/stacked.npz") as f:
        arrays = {key: f[key] for key in f.files}
    return {**arrays, **changes}


def swapped(path: Path, data: bytes):
    """A context in which `path` holds `data`; the original comes back after."""
    class Swap:
        def __enter__(self):
            self.original = path.read_bytes()
            path.write_bytes(data)

        def __exit__(self, *exc):
            path.write_bytes(self.original)

    return Swap()


def outputs_of(project: Path, names: list[str]) -> dict:
    return {name: (project / name).read_bytes() for name in names}


DIGITS = [str(d) for d in range(10)]
CLASS_NAMES = [  # C1-C6: (class names, what the line says)
    (np.array([f"class {i}" for i in range(20_000)]), "holds class_names of shape (20000,)"),
    (np.array(["x" * 1_000_000] + DIGITS[1:]), "strings of up to 1,000,000 characters"),
    (np.array([r"$\frac{a}{b}$"] + DIGITS[1:]), "class names that are not those of a known dataset"),
    (np.array(["a,b\nc"] + DIGITS[1:]), "class names that are not those of a known dataset"),
    (np.array(["</script><script>alert(1)</script>"] + DIGITS[1:]), "not those of a known dataset"),
    (np.array(DIGITS[::-1]), "not those of a known dataset"),  # the right names in another order
]
LATENT_STAGES = ["svm", "tsne"]
SVM_OUTPUTS = ["metrics/svm_stacked.json", "plots/confusion/stacked.png", "data/predictions/stacked.npz"]


@pytest.mark.parametrize("names,expected", CLASS_NAMES)
@pytest.mark.parametrize("command", LATENT_STAGES)
def test_class_names_of_latents_are_the_datasets_or_refused(project, names, expected, command):
    before = outputs_of(project, SVM_OUTPUTS)
    with swapped(project / "data/latents/stacked.npz", npz(latents_with(project, class_names=names))):
        proc, peak = peak_of([sys.executable, "-m", "stages", command, "stacked"], project)
    line = error_line(proc)
    assert "data/latents/stacked.npz" in line and expected in line, line
    assert peak < MAX_MB and outputs_of(project, SVM_OUTPUTS) == before


@pytest.mark.parametrize("command", [("latents", "stacked"), ("train", "stacked"), ("baselines", "pixels")])
def test_class_names_of_prepared_data_are_the_datasets_or_refused(project, command):
    path = project / "data/prepared/test.npz"
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    with swapped(path, npz({**arrays, "class_names": np.array(["<b>0</b>"] + DIGITS[1:])})):
        line = error_line(stage(command[0], project, *command[1:]))
    assert "data/prepared/test.npz" in line and "not those of a known dataset" in line


def inflating(arrays: dict) -> bytes:
    """An .npz whose headers promise `arrays` (name -> (shape, dtype)) and whose data is a little zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, (shape, dtype) in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array_header_1_0(member, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                              "shape": shape})
                member.write(bytes(4_000_000))
    return buffer.getvalue()


INFLATING = [  # N1-N4: (arrays, what the line says)
    ({"z_train": ((240_000, 784), "<f4"), "z_test": ((240_000, 784), "<f4"), "y_train": ((240_000,), "u1"),
      "y_test": ((240_000,), "u1"), "class_names": ((10,), "<U1")}, "would take"),
    ({"z_train": ((60_000, 784), "<f8"), "z_test": ((10_000, 784), "<f8"), "y_train": ((60_000,), "u1"),
      "y_test": ((10_000,), "u1"), "class_names": ((10,), "<U1")}, "holds z_train of dtype float64"),
    ({"z_train": ((300_000, 8), "<f4"), "z_test": ((100, 8), "<f4"), "y_train": ((300_000,), "u1"),
      "y_test": ((100,), "u1"), "class_names": ((10,), "<U1")}, "holds z_train of shape (300000, 8)"),
    ({"z_train": ((300, 8), "O"), "z_test": ((100, 8), "<f4"), "y_train": ((300,), "u1"),
      "y_test": ((100,), "u1"), "class_names": ((10,), "<U1")}, "holds z_train of dtype object"),
]


@pytest.mark.parametrize("arrays,expected", INFLATING)
@pytest.mark.parametrize("command", LATENT_STAGES)
def test_arrays_that_would_inflate_are_refused_from_their_headers(project, arrays, expected, command):
    data = inflating(arrays)
    assert len(data) < 10_000_000
    with swapped(project / "data/latents/stacked.npz", data):
        proc, peak = peak_of([sys.executable, "-m", "stages", command, "stacked"], project)
    line = error_line(proc)
    assert "data/latents/stacked.npz" in line and expected in line, line
    assert peak < 600  # the libraries alone: nothing was inflated


def test_a_tsne_table_whose_classes_are_not_the_datasets_never_reaches_the_page(project):
    for name, args in (("baselines", ["pixels"]), ("baselines", ["pca"])):
        stage(name, project, *args, check=True)
    stage("report", project, check=True)
    before = outputs_of(project, ["plots/report.md", "plots/compare/tsne.csv"])
    path = project / "plots/tsne/stacked.csv"
    hostile = path.read_text().replace(",0\n", ",</script><script>alert(1)</script>\n", 1)
    assert hostile != path.read_text()
    with swapped(path, hostile.encode()):
        line = error_line(stage("report", project))
    assert "plots/tsne/stacked.csv" in line and "class names that are not mnist's" in line
    assert outputs_of(project, ["plots/report.md", "plots/compare/tsne.csv"]) == before


@pytest.mark.parametrize("value", ["1.5", "-0.2", "NaN", "true", '"0.9"'])
def test_a_metric_out_of_its_range_never_reaches_the_report(project, value):
    import json

    stage("report", project, check=True)
    before = outputs_of(project, ["plots/report.md"])
    path = project / "metrics/svm_stacked.json"
    changed = {**json.loads(path.read_text()), "accuracy": json.loads(value)}
    with swapped(path, json.dumps(changed).encode()):
        line = error_line(stage("report", project))
    assert "metrics/svm_stacked.json" in line and "accuracy" in line
    assert outputs_of(project, ["plots/report.md"]) == before


ARGUMENTS = [  # A1-A7: stages and tools refuse what they do not take
    ([sys.executable, "-m", "stages", "prepare", "junk"], "no arguments"),
    ([sys.executable, "-m", "stages", "report", "conv"], "no arguments"),
    ([sys.executable, "-m", "stages", "download", "x", "y"], "no arguments"),
    ([sys.executable, "-m", "stages", "svm", "stacked", "extra"], "usage:"),
    ([sys.executable, "-m", "tools.sweep", "--jobs", "0"], "--jobs is '0'"),
    ([sys.executable, "-m", "tools.sweep", "--scheduler", "tcp://"], "not a Dask scheduler address"),
    ([sys.executable, "-m", "tools.exps", "junk"], "unrecognized arguments: junk"),
    ([sys.executable, "-m", "tools.compare_runs", "a"], "two project folders"),
]


@pytest.mark.parametrize("command,expected", ARGUMENTS)
def test_stray_arguments_are_one_line(project, command, expected):
    proc = subprocess.run(command, cwd=project, env=env(), capture_output=True, text=True, timeout=120)
    line = error_line(proc)
    assert expected in line, line


def test_the_old_entry_point_runs_the_stage(project):
    before = (project / "metrics/tsne_stacked.json").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "stages.tsne", "stacked"], cwd=project, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "tsne stacked:" in proc.stdout, proc.stderr
    assert (project / "metrics/tsne_stacked.json").read_bytes() == before  # the same result, as it should be
    line = error_line(subprocess.run([sys.executable, "-m", "stages.prepare", "junk"], cwd=project, env=env(),
                                     capture_output=True, text=True, timeout=120))
    assert "no arguments" in line


def test_a_bare_pickle_for_a_model_is_one_line_without_torchs_warning(project, tmp_path):
    import pickle

    path = project / "data/models/stacked.pt"
    with swapped(path, pickle.dumps({"state_dict": {}}, protocol=4)):
        proc = stage("latents", project, "stacked")
    line = error_line(proc)
    assert "not a model file" in line and "Warning" not in proc.stderr and "weights_only" not in proc.stderr


def test_a_crafted_file_pushed_by_one_clone_is_refused_by_another(project, tmp_path):
    """Input that travels: clone A records crafted latents with DVC and pushes them; clone B pulls and scores."""
    a, origin, storage = tmp_path / "a", tmp_path / "origin.git", tmp_path / "storage"
    shutil.copytree(project, a, ignore=shutil.ignore_patterns("tmp"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e"]
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, check=True)
    run(["git", "init", "-q", "-b", "main"], a, check=True)
    run(["dvc", "remote", "add", "-d", "shared", str(storage)], a, check=True)
    run(["dvc", "repro", "latents@stacked"], a, check=True)
    crafted = npz(latents_with(a, class_names=np.array(["</script>"] + DIGITS[1:])))
    (a / "data/latents/stacked.npz").write_bytes(crafted)
    run(["dvc", "commit", "-f", "latents@stacked"], a, check=True)  # as a tampering machine would record it
    run(["dvc", "push"], a, check=True)
    run([*git, "add", "-A"], a, check=True)
    run([*git, "commit", "-qm", "crafted"], a, check=True)
    run([*git, "remote", "add", "origin", str(origin)], a, check=True)
    run([*git, "push", "-q", "origin", "main"], a, check=True)

    b = tmp_path / "b"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(b)], tmp_path, check=True)
    run(["dvc", "pull", "data/latents/stacked.npz"], b, check=True)
    assert (b / "data/latents/stacked.npz").read_bytes() == crafted
    line = error_line(stage("svm", b, "stacked"))
    assert "data/latents/stacked.npz" in line and "not those of a known dataset" in line
    assert not (b / "metrics/svm_stacked.json").exists() or b"</script>" not in (
        b / "metrics/svm_stacked.json").read_bytes()
