"""`make sweep` end to end on tiny data: queued experiments, parallel workers, the report, a no-op rerun.

Runs in a scratch git repository whose data.source is a relative, git-ignored folder
(queued experiments run in a temporary copy and must still find it), with PATH
stripped of the environment (as `.venv/bin/python -m tools.sweep` from a shell
that never activated it).
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys

from stages.common.models.device import usable_cores
from tests.conftest import data_source_for_e2e
from tests.stagerun import env, make_project, run, venv_path_hook_installed


def test_sweep_queues_one_experiment_per_latent_size_and_reports(tmp_path):
    repo = make_project(tmp_path / "repo", {
        "archs": ["stacked"],
        "data": {"source": "data/src", "train_limit": 500, "test_limit": 100},
        "train": {"epochs": 1},
        "tsne": {"per_class": 5, "perplexity": 4},
        "baselines": {"enabled": False},
        "sweep": {"latent_dims": [2, 4], "jobs": 2},
    })
    shutil.copytree(data_source_for_e2e(tmp_path), repo / "data" / "src")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/data/src/\n")
    run(["git", "init", "-q"], repo, check=True)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "add", "-A"], repo, check=True)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "sweep"], repo, check=True)

    path = "/usr/bin:/bin" if venv_path_hook_installed() else env()["PATH"]
    sweep_env = {**env(), "PATH": path}
    first = subprocess.run([sys.executable, "-m", "tools.sweep"], cwd=repo, env=sweep_env, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    threads = max(1, usable_cores() // 2)
    assert f"2 to run with 2 worker(s) of {threads} thread(s)" in first.stdout
    with open(repo / "plots/sweep/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["latent_dim"]) for r in rows) == [2, 4]
    assert all(r["architecture"] == "Stacked AE" and float(r["test_mse"]) > 0 for r in rows)
    assert (repo / "plots/sweep/latent_size.png").stat().st_size > 10_000
    report = (repo / "plots/sweep/report.md").read_text()
    assert "| Stacked AE |" in report and "Wall time of this sweep" in report

    again = subprocess.run([sys.executable, "-m", "tools.sweep"], cwd=repo, env=sweep_env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "0 to run" in again.stdout and "nothing to run" in again.stdout
