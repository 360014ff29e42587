"""`make sweep` on a Dask cluster, end to end: a LocalCluster of 2 worker processes, a bare git repository
as git remote and a folder as DVC remote, a 2 seeds x 2 latent sizes grid on tiny data, one worker killed
in the middle of a cell. Every cell appears exactly once in `dvc exp show` and in plots/sweep/ of the
coordinating clone; a second sweep runs nothing; a failing cell is reported in one line; the SLURM job
script renders.
"""
from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import data_source_for_e2e
from tests.stagerun import env, make_project, run

TINY = {
    "archs": ["stacked"],
    "data": {"train_limit": 300, "test_limit": 100},
    "train": {"epochs": 1},
    "tsne": {"per_class": 5, "perplexity": 4},
    "baselines": {"train_limit": 200},
    "sweep": {"latent_dims": [2, 4], "seeds": [1, 2]},
}


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], repo, check=True)


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory):
    """A clone with a git and a DVC remote, its data prepared and shared, then its data.source folder gone."""
    root = tmp_path_factory.mktemp("cluster")
    source = root / "source"
    shutil.copytree(data_source_for_e2e(root), source)
    repo = make_project(root / "repo", {**TINY, "data": {**TINY["data"], "source": str(source)}})
    run(["git", "init", "-q", "--bare", str(root / "remote.git")], root, check=True)
    run(["git", "init", "-q", "-b", "main"], repo, check=True)
    git(repo, "remote", "add", "origin", str(root / "remote.git"))
    run(["dvc", "remote", "add", "-d", "shared", str(root / "dvc-remote")], repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    git(repo, "push", "-q", "origin", "main")
    run(["dvc", "repro", "prepare"], repo, check=True)
    shutil.rmtree(source)  # workers and the coordinator restore the data from the DVC remote from here on
    return repo


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"PATH": env()["PATH"], "DVC_NO_ANALYTICS": "1"}) as local:
        yield local


def sweep(repo: Path, scheduler: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.sweep", "--scheduler", scheduler], cwd=repo, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def kill_a_worker_mid_cell(cluster, killed: list, deadline_seconds: float = 300) -> None:
    """SIGKILL the first worker process seen running a cell's `dvc exp run`."""
    deadline = time.time() + deadline_seconds
    while time.time() < deadline and not killed:
        for worker in list(cluster.workers.values()):
            pid = getattr(getattr(worker, "process", None), "pid", None)
            if pid is None:
                continue
            try:
                children = psutil.Process(pid).children(recursive=True)
                busy = any("exp" in child.cmdline() and "run" in child.cmdline() for child in children)
            except psutil.NoSuchProcess:
                continue
            if busy:
                time.sleep(2)  # well inside the cell
                psutil.Process(pid).send_signal(signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.2)


def test_a_grid_on_dask_survives_a_killed_worker_and_lists_every_cell_once(coordinator, cluster):
    killed: list = []
    killer = threading.Thread(target=kill_a_worker_mid_cell, args=(cluster, killed), daemon=True)
    killer.start()
    proc = sweep(coordinator, cluster.scheduler_address)
    killer.join(timeout=5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert killed, "no worker was seen running a cell"
    assert "4 to run on the Dask cluster" in proc.stdout

    shown = json.loads(run(["dvc", "exp", "show", "--json"], coordinator, check=True).stdout)
    names = [exp["name"] for commit in shown for exp in (commit.get("experiments") or [])]
    assert sorted(names) == sorted(f"cell-s{s}-d{d}-{_head(coordinator)[:7]}" for s in (1, 2) for d in (2, 4))
    with open(coordinator / "plots/sweep/runs.csv") as f:
        cells = [(row["seed"], row["latent_dim"]) for row in csv.DictReader(f) if row["name"] == "stacked"]
    assert sorted(cells) == [("1", "2"), ("1", "4"), ("2", "2"), ("2", "4")]
    report = (coordinator / "plots/sweep/report.md").read_text()
    assert "the Dask cluster at" in report and "(n=2, rank " in report
    exps = run([sys.executable, "-m", "tools.exps"], coordinator, check=True).stdout
    assert all(name in exps for name in names)

    again = sweep(coordinator, cluster.scheduler_address)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 to run on the Dask cluster" in again.stdout


def test_another_clone_lists_the_cells_and_restores_them_without_recomputing(coordinator, tmp_path):
    clone = tmp_path / "clone"
    remote = str(coordinator.parent / "remote.git")
    run(["git", "clone", "-q", "-b", "main", remote, str(clone)], tmp_path, check=True)
    name = f"cell-s2-d4-{_head(coordinator)[:7]}"
    run(["dvc", "exp", "pull", "origin", name], clone, check=True)
    run(["dvc", "exp", "apply", name], clone, check=True)
    run(["dvc", "pull", "--run-cache"], clone, check=True)
    repro = run(["dvc", "repro", "--pull"], clone, check=True)
    assert "Running stage" not in repro.stdout, repro.stdout


def test_a_failing_cell_is_one_line_and_the_rest_publish(coordinator):
    from tools.cluster import cell_name, prepare_coordinator, run_cell

    shared = _in(coordinator, prepare_coordinator, "origin")
    outcome = run_cell({**shared, "seed": -1, "latent_dim": 2, "threads": 1, "name": cell_name(-1, 2, "bad")})
    assert "error: params.yaml: seed is -1; expected an integer from 0" in outcome["error"]


def test_the_slurm_job_script_renders_without_slurm(coordinator):
    proc = run([sys.executable, "-m", "tools.cluster", "slurm", "--cores", "8", "--memory", "16GB",
                "--print-job-script"], coordinator, check=True)
    script = proc.stdout
    assert "#SBATCH -J ae-sweep" in script and "#SBATCH --mem=" in script
    assert "distributed.cli.dask_worker" in script and "--nthreads 1" in script and "--nworkers 8" in script


def _head(repo: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], repo, check=True).stdout.strip()


def _in(folder: Path, function, *args):
    import os

    here = Path.cwd()
    os.chdir(folder)
    try:
        return function(*args)
    finally:
        os.chdir(here)
