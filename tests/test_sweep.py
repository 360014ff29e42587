"""`make sweep` end to end on tiny data: a seeds x latent-size grid, parallel workers, the report, reruns.

Runs in a scratch git repository whose data.source is a relative, git-ignored folder
(queued experiments run in a temporary copy and must still find it), with PATH
stripped of the environment (as `.venv/bin/python -m tools.sweep` from a shell
that never activated it).
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

from stages.common.models.device import usable_cores
from tests.conftest import data_source_for_e2e
from tests.stagerun import env, make_project, run, set_params, venv_path_hook_installed
from tools.exps import experiments


def test_sweep_runs_the_seed_grid_reports_intervals_and_reruns_only_new_cells(tmp_path):
    repo = make_project(tmp_path / "repo", {
        "archs": ["stacked", "superres"],
        "data": {"source": "data/src", "train_limit": 500, "test_limit": 100},
        "train": {"epochs": 1},
        "tsne": {"per_class": 5, "perplexity": 4},
        "baselines": {"train_limit": 200},
        "sweep": {"latent_dims": [4], "seeds": [1, 2], "jobs": 2},
    })
    shutil.copytree(data_source_for_e2e(tmp_path), repo / "data" / "src")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/data/src/\n")
    run(["git", "init", "-q"], repo, check=True)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "add", "-A"], repo, check=True)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "sweep"], repo, check=True)

    path = "/usr/bin:/bin" if venv_path_hook_installed() else env()["PATH"]
    sweep_env = {**env(), "PATH": path}

    def sweep(timeout: int) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "tools.sweep"], cwd=repo, env=sweep_env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    first = sweep(900)
    threads = max(1, usable_cores() // 2)
    assert f"2 cells (seeds x latent sizes); 2 to run with 2 worker(s) of {threads} thread(s)" in first.stdout
    runs = read_csv(repo / "plots/sweep/runs.csv")
    assert sorted({(r["seed"], r["latent_dim"]) for r in runs}) == [("1", "4"), ("2", "4")]
    assert {r["name"] for r in runs} == {"stacked", "superres", "pixels", "pca"}
    results = read_csv(repo / "plots/sweep/results.csv")
    accuracy = {r["name"]: r for r in results if r["metric"] == "accuracy"}
    assert set(accuracy) == {"stacked", "superres", "pixels", "pca"}
    assert all(r["n"] == "2" for r in accuracy.values())
    assert all(r["ci_low"] and float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"])
               for r in accuracy.values() if r["name"] != "pixels")
    comparisons = read_csv(repo / "plots/sweep/comparisons.csv")
    assert len([c for c in comparisons if c["metric"] == "accuracy"]) == 6  # every pair of four
    assert len([c for c in comparisons if c["metric"] == "test_mse"]) == 1
    report = (repo / "plots/sweep/report.md").read_text()
    assert "2 seed(s), 1 epoch each" in report and "Wall time of the sweep run that computed 2" in report
    assert "(n=2, rank " in report and "| Stacked AE |" in report and "Holm" in report
    assert (repo / "plots/sweep/latent_size.png").stat().st_size > 10_000

    again = sweep(120)
    assert "0 to run" in again.stdout and "nothing to run" in again.stdout
    assert "Wall time of the sweep run that computed 2" in (repo / "plots/sweep/report.md").read_text()

    # Committing the results moves HEAD: the cells now hang off the parent commit, and still count.
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "add", "-A"], repo, check=True)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "sweep results"], repo, check=True)
    after_commit = sweep(120)
    assert "0 to run" in after_commit.stdout, after_commit.stdout[-2000:]
    shown = json.loads(run(["dvc", "exp", "show", "--json", "--all-commits"], repo, check=True).stdout)
    names = [exp["name"] for exp in experiments(shown)]
    exps = subprocess.run([sys.executable, "-m", "tools.exps"], cwd=repo, env=sweep_env, capture_output=True,
                          text=True, timeout=120)
    assert len(names) == 2 and all(name in exps.stdout for name in names), exps.stdout  # make exps lists them

    set_params(repo, {"sweep": {"seeds": [1, 2, 3]}})
    third = sweep(900)
    assert "3 cells (seeds x latent sizes); 1 to run" in third.stdout
    assert "(n=3, rank " in (repo / "plots/sweep/report.md").read_text()


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))
