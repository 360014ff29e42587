"""tools/experiments.py, the no-op sweep and `make exps` on a long history made without training
(tests/fake_experiments.py): what they read, what they refuse, and that their cost does not grow with commits."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.fake_experiments import ARCHS, add_experiment, cell_files, long_history
from tests.stagerun import env, inside

CELLS = [(seed, dim) for dim in (2, 4) for seed in (1, 2, 3)]
SWEEP = {"seeds": [1, 2, 3], "latent_dims": [2, 4]}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return long_history(tmp_path_factory.mktemp("history") / "repo", 100, CELLS, SWEEP)


def tool(repo: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *args], cwd=repo, env=env(), capture_output=True,
                          text=True, timeout=300)


def test_every_experiment_is_read_from_its_ref_with_params_and_metrics(history):
    from tools.experiments import read_experiments

    found = inside(history, read_experiments, ARCHS)
    assert len(found) == len(CELLS) and not [e for e in found if e.problems]
    exp = next(e for e in found if e.params["seed"] == 2 and e.params["train"]["latent_dim"] == 4)
    assert exp.name.startswith("cell-s2-d4-") and len(exp.baseline) == 40
    assert 0 < exp.metrics["metrics/svm_pca.json"]["accuracy"] <= 1
    assert "metrics/tsne_superres.json" in exp.metrics


def count_calls(monkeypatch) -> dict:
    """Count git and dvc subprocesses, and dvc run through tools.experiments.dvc."""
    calls = {"git": 0, "dvc": 0}
    real_run, real_popen = subprocess.run, subprocess.Popen

    def which(args) -> str | None:
        args = list(args) if not isinstance(args, str) else args.split()
        if args and args[0] == "git":
            return "git"
        if "dvc" in args[:3]:
            return "dvc"
        return None

    def run(args, *a, **k):
        if (kind := which(args)):
            calls[kind] += 1
        return real_run(args, *a, **k)

    class Popen(real_popen):
        def __init__(self, args, *a, **k):
            if (kind := which(args)):
                calls[kind] += 1
            super().__init__(args, *a, **k)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    return calls


def calls_of(monkeypatch, repo: Path, main) -> dict:
    """The git and dvc subprocesses of `main([])` run in `repo`."""
    calls = count_calls(monkeypatch)
    try:
        inside(repo, main, [])
    finally:
        monkeypatch.undo()
    return dict(calls)


def test_a_sweep_with_nothing_to_run_calls_dvc_never_and_git_as_often_on_any_history(history, tmp_path,
                                                                                      monkeypatch, capsys):
    from tools import sweep

    long_calls = calls_of(monkeypatch, history, sweep.main)
    assert "0 to run" in capsys.readouterr().out
    short = long_history(tmp_path / "short", 3, CELLS, SWEEP)
    short_calls = calls_of(monkeypatch, short, sweep.main)
    assert long_calls == short_calls and long_calls["dvc"] == 0 and long_calls["git"] <= 10, long_calls
    report = (history / "plots/sweep/report.md").read_text()
    assert "3 seed(s)" in report and "## SVM accuracy" in report


def test_make_exps_lists_every_experiment_and_its_cost_does_not_grow_with_commits(history, tmp_path, monkeypatch,
                                                                                  capsys):
    from tools import exps

    long_calls = calls_of(monkeypatch, history, exps.main)
    out = capsys.readouterr().out
    assert sum(line.strip().startswith("cell-s") for line in out.splitlines()) == len(CELLS)
    assert max(len(line) for line in out.splitlines()) <= exps.WIDTH
    short = long_history(tmp_path / "short", 3, CELLS, SWEEP)
    assert calls_of(monkeypatch, short, exps.main) == long_calls and long_calls["dvc"] == 0


BAD_VALUES = [("accuracy", float("nan"), "nan"), ("accuracy", 1e308, "1e+308"), ("accuracy", True, "True"),
              ("accuracy", "0.9", "'0.9'"), ("accuracy", 1.2, "1.2"), ("accuracy", -0.1, "-0.1")]


@pytest.mark.parametrize("key,value,shown", BAD_VALUES)
def test_a_bad_recorded_metric_excludes_its_cell_by_name_file_and_key(tmp_path, key, value, shown):
    repo = long_history(tmp_path / "repo", 2, CELLS[:2], {"seeds": [1, 2], "latent_dims": [2]})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    files = cell_files(repo, 3, 2, {"stacked": {key: value}})
    files["metrics/svm_stacked.json"] = json.dumps({key: value}).replace("Infinity", "1e999").encode()
    add_experiment(repo, head, "bad-cell", files)
    subprocess.run([sys.executable, "-c", "import yaml,sys; p=yaml.safe_load(open('params.yaml')); "
                    "p['sweep']['seeds']=[1,2,3]; yaml.safe_dump(p, open('params.yaml','w'), sort_keys=False)"],
                   cwd=repo, check=True)
    proc = tool(repo, "sweep", "--report-only")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "1 excluded" in errors[0], proc.stderr
    assert f"bad-cell: metrics/svm_stacked.json has accuracy = {shown}" in proc.stderr
    report = (repo / "plots/sweep/report.md").read_text()
    assert "## Excluded cells" in report and "bad-cell" in report and "2 seed(s)" in report
    assert "nan" not in report.split("## test MSE")[1] and "inf" not in report.split("## test MSE")[1]
    listing = tool(repo, "exps")
    assert listing.returncode == 0 and "invalid" in listing.stdout
    assert "exps: invalid: bad-cell: metrics/svm_stacked.json has accuracy" in listing.stderr


def test_a_per_image_file_that_would_inflate_is_refused_from_its_header_and_its_cell_excluded(tmp_path):
    import zipfile

    from tools.experiments import Blobs, locked_outputs, read_experiments

    repo = long_history(tmp_path / "repo", 2, CELLS[:3], {"seeds": [1, 2, 3], "latent_dims": [2]})
    victim = next(e for e in inside(repo, read_experiments, ARCHS) if e.params["seed"] == 2)
    with Blobs(repo) as blobs:
        md5 = locked_outputs(blobs, victim)["data/errors/stacked.npz"]
    # A 4 MB file whose arrays claim 2 GB each, as a crafted run pushed to a remote could be.
    with zipfile.ZipFile(repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:], "w", zipfile.ZIP_DEFLATED) as archive:
        for key in ("test_mse", "denoise_mse"):
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                              "shape": (250_000_000,)})
                member.write(bytes(2_000_000))
    proc = tool(repo, "sweep", "--report-only")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{victim.name}: data/errors/stacked.npz" in proc.stderr and "holds test_mse of shape (250000000,)" \
        in proc.stderr
    assert "2 seed(s)" in (repo / "plots/sweep/report.md").read_text()


@pytest.mark.parametrize("key,value", [("mean_image_mse", -0.1), ("mean_image_mse", 7), ("steps", 2.5),
                                       ("loss_drop_last_fifth", "NaN"), ("steps", True)])
def test_a_bad_run_record_in_the_cache_excludes_its_cell_by_name_file_and_key(tmp_path, key, value):
    """The run facts that judge a run (failed? converged?) come from the DVC cache, a remote's or a run-cache's:
    input like any other."""
    from tools.experiments import Blobs, locked_outputs, read_experiments

    repo = long_history(tmp_path / "repo", 2, CELLS[:3], {"seeds": [1, 2, 3], "latent_dims": [2]})
    victim = next(e for e in inside(repo, read_experiments, ARCHS) if e.params["seed"] == 2)
    with Blobs(repo) as blobs:
        md5 = locked_outputs(blobs, victim)["metrics/run/train_stacked.json"]
    path = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    facts = json.loads(path.read_text())
    path.write_text(json.dumps({**facts, key: value}).replace('"NaN"', "NaN"))
    proc = tool(repo, "sweep", "--report-only")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{victim.name}: metrics/run/train_stacked.json has {key}" in proc.stderr
    assert "2 seed(s)" in (repo / "plots/sweep/report.md").read_text()


def test_a_second_sweep_in_one_clone_says_who_computes_and_stops(tmp_path):  # #43
    from stages.common.errors import PipelineError
    from tools.sweep import SWEEP_LOCK, one_sweep_at_a_time

    repo = long_history(tmp_path / "repo", 2, CELLS[:2], {"seeds": [1, 2, 3], "latent_dims": [2]})  # one to run
    with one_sweep_at_a_time(repo / SWEEP_LOCK):
        proc = tool(repo, "sweep")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert "another sweep is already computing cells in this clone (pid " in line and " since " in line
        assert "1 to run" in proc.stdout and "cell(s) to run on" not in proc.stdout  # it started no cell
        with pytest.raises(PipelineError, match="another sweep"):
            with one_sweep_at_a_time(repo / SWEEP_LOCK):
                pass
    with one_sweep_at_a_time(repo / SWEEP_LOCK):  # free again once its holder is done
        pass


@pytest.mark.parametrize("out,said", [("", "got an empty path"), (".", "is the repository root"),
                                      ("params.yaml", "is a file, not a folder")])
def test_a_report_folder_that_is_no_folder_of_its_own_is_refused_before_anything_runs(tmp_path, out, said):  # #43
    repo = long_history(tmp_path / "repo", 2, CELLS[:2], {"seeds": [1, 2], "latent_dims": [2]})
    proc = tool(repo, "sweep", "--report-only", "--out", out)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and said in proc.stderr
    assert "sweep:" not in proc.stdout and not (repo / "report.md").exists()


def test_git_that_cannot_record_the_changes_is_said_with_what_to_do(tmp_path, monkeypatch):  # #43
    from stages.common.errors import PipelineError
    from tools.experiments import workspace_commit

    shim = tmp_path / "bin"
    shim.mkdir()
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\n[ "$1" = stash ] && exit 1\nexec {real_git} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{__import__('os').environ['PATH']}")
    with pytest.raises(PipelineError) as err:  # what git says on a read-only .git: nothing, exit 1
        workspace_commit(ROOT)
    assert "git stash create (no message, exit 1)" in str(err.value) and ".git must be writable" in str(err.value)


def test_a_cell_cost_in_an_old_timing_file_is_never_read_back(tmp_path):  # #43: a file a tool reads back
    repo = long_history(tmp_path / "repo", 2, CELLS[:2], {"seeds": [1, 2], "latent_dims": [2]})
    (repo / "plots/sweep").mkdir(parents=True)
    (repo / "plots/sweep/timing.json").write_text(json.dumps(
        {"where": "here", "cells": 2, "wall_seconds": 10.0,
         "cell_cost": {"cells": "many", "median_wall_seconds": "x", "median_seconds": {"<b>": "junk"}}}))
    proc = tool(repo, "sweep", "--report-only")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = (repo / "plots/sweep/report.md").read_text()
    assert "Wall time of the sweep run that computed 2" in report and "Where a cell's time goes" not in report
    assert "cell_cost" not in json.loads((repo / "plots/sweep/timing.json").read_text())
