"""`make sweep` on a Dask cluster, end to end: a LocalCluster of worker processes, a bare git repository as git
remote and a folder as DVC remote, a 2 seeds x 2 latent sizes grid on tiny data, one worker killed in the
middle of a cell. Every cell appears exactly once in `dvc exp show` and in plots/sweep/ of the coordinating
clone; a second sweep runs nothing; a scheduler that cannot be reached is found before anything is pushed;
losing every worker ends the sweep in bounded time; a failing cell keeps its log; the SLURM job script
renders without a scheduler.
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
from tests.stagerun import env, inside, make_project, run

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


def local_cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        env={"PATH": env()["PATH"], "DVC_NO_ANALYTICS": "1"})


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as local:
        yield local


def sweep(repo: Path, scheduler: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.sweep", "--scheduler", scheduler, *args], cwd=repo,
                          env=env(), capture_output=True, text=True, timeout=timeout)


def worker_pids(cluster) -> list[int]:
    return [pid for worker in cluster.workers.values()
            if (pid := getattr(getattr(worker, "process", None), "pid", None))]


def running_a_cell(pids: list[int]) -> int | None:
    """The first of `pids` with a cell's `dvc exp run` among its descendants."""
    for pid in pids:
        try:
            if any("exp" in c.cmdline() and "run" in c.cmdline() for c in psutil.Process(pid).children(True)):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def wait_for(find, deadline_seconds: float = 300):
    deadline = time.time() + deadline_seconds
    while time.time() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    return None


def remote_refs(repo: Path, prefix: str) -> list[str]:
    return run(["git", "ls-remote", "origin", prefix], repo, check=True).stdout.split()


def test_a_grid_on_dask_survives_a_killed_worker_and_lists_every_cell_once(coordinator, cluster):
    killed: list = []

    def kill_one():
        pid = wait_for(lambda: running_a_cell(worker_pids(cluster)))
        if pid:
            time.sleep(2)  # well inside the cell
            psutil.Process(pid).send_signal(signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    proc = sweep(coordinator, cluster.scheduler_address)
    killer.join(timeout=5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert killed, "no worker was seen running a cell"
    assert "4 to run" in proc.stdout and "on the Dask cluster at" in proc.stdout

    head = run(["git", "rev-parse", "HEAD"], coordinator, check=True).stdout.strip()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], coordinator, check=True).stdout)
    names = [exp["name"] for commit in shown for exp in (commit.get("experiments") or [])]
    assert sorted(names) == sorted(f"cell-s{s}-d{d}-{head[:7]}" for s in (1, 2) for d in (2, 4))
    with open(coordinator / "plots/sweep/runs.csv") as f:
        cells = [(row["seed"], row["latent_dim"]) for row in csv.DictReader(f) if row["name"] == "stacked"]
    assert sorted(cells) == [("1", "2"), ("1", "4"), ("2", "2"), ("2", "4")]
    report = (coordinator / "plots/sweep/report.md").read_text()
    assert "the Dask cluster at" in report and "(rank " in report
    assert len(list((coordinator / "plots/sweep/logs").glob("cell-*.log"))) == 4
    assert remote_refs(coordinator, "refs/sweeps/*") == []  # the sweep's ref went with it
    exps = run([sys.executable, "-m", "tools.exps"], coordinator, check=True).stdout
    assert all(name in exps for name in names)

    # Run, commit, run again (docs/machines.md's order): the results committed, nothing left to run.
    git(coordinator, "add", "-A")
    git(coordinator, "commit", "-qm", "sweep results")
    again = sweep(coordinator, cluster.scheduler_address)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 finished, 0 to run" not in again.stdout and "4 finished, 0 to run" in again.stdout
    assert "computed 4 of these cells" in (coordinator / "plots/sweep/report.md").read_text()  # kept


def test_another_clone_lists_the_cells_and_restores_them_without_recomputing(coordinator, tmp_path):
    clone = tmp_path / "clone"
    remote = str(coordinator.parent / "remote.git")
    run(["git", "clone", "-q", "-b", "main", remote, str(clone)], tmp_path, check=True)
    head = run(["git", "rev-parse", "HEAD~1"], coordinator, check=True).stdout.strip()
    name = f"cell-s2-d4-{head[:7]}"
    run(["dvc", "exp", "pull", "origin", name], clone, check=True)
    run(["dvc", "exp", "apply", name], clone, check=True)
    run(["dvc", "pull", "--run-cache"], clone, check=True)
    repro = run(["dvc", "repro", "--pull"], clone, check=True)
    assert "Running stage" not in repro.stdout, repro.stdout


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "http://x", "tcp://", "tcp://127.0.0.1:99999"])
def test_a_scheduler_that_cannot_be_reached_is_one_line_before_anything_is_pushed(coordinator, address):
    from tests.stagerun import set_params

    objects = sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file())
    set_params(coordinator, {"sweep": {"seeds": [9]}})  # a cell to run, so the sweep must reach the scheduler
    try:
        proc = sweep(coordinator, address, "--connect-timeout", "3", timeout=120)
    finally:
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert address in errors[0] and "unexpected" not in errors[0]
    assert remote_refs(coordinator, "refs/sweeps/*") == []
    assert sorted(p.name for p in (coordinator.parent / "dvc-remote").rglob("*") if p.is_file()) == objects


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributed.cli." + args[0], *args[1:]], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("lost", ["workers", "scheduler"])
def test_losing_every_worker_or_the_scheduler_ends_the_sweep_in_bounded_time(coordinator, lost):
    """As a user has it: `dask scheduler` and `dask worker` as processes of their own, the worker killed with its
    children (or the scheduler killed) in the middle of a cell."""
    from tests.stagerun import set_params

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = dask("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    worker = dask("dask_worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard")
    set_params(coordinator, {"sweep": {"seeds": [5], "latent_dims": [2]}})  # a cell not run yet
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep", "--scheduler", address, "--connect-timeout", "5",
                             "--no-workers-timeout", "5"], cwd=coordinator, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: running_a_cell([worker.pid])), "no worker was seen running a cell"
        victims = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        if lost == "scheduler":
            victims = [psutil.Process(scheduler.pid)]
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=120)
        assert time.monotonic() - stopped < 60
    finally:
        for leftover in (proc, worker, scheduler):
            if leftover.poll() is None:
                leftover.kill()
        run(["git", "checkout", "params.yaml"], coordinator, check=True)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    expected = "no Dask worker for 5 s" if lost == "workers" else "lost the Dask scheduler"
    assert len(errors) == 1 and expected in errors[0] and "not run: cell-s5-d2" in errors[0], stderr
    assert "Traceback" not in stderr
    if lost == "workers":  # the cell's processes went with their worker (each step's guard saw to it)
        def cell_processes():
            return [p for p in psutil.process_iter(["cmdline"]) if "cell-s5-d2" in " ".join(p.info["cmdline"] or [])]

        assert wait_for(lambda: not cell_processes() or None, 30), [p.info["cmdline"] for p in cell_processes()]
    assert remote_refs(coordinator, "refs/sweeps/*") == []


def test_a_failing_cell_is_one_line_and_keeps_its_log(coordinator):
    from tools.cells import cell_name, run_cell
    from tools.cluster import cluster_plan, remove_sweep_ref

    plan = inside(coordinator, cluster_plan, "origin")
    try:
        outcome = run_cell({**plan, "seed": -1, "latent_dim": 2, "threads": 1, "name": cell_name(-1, 2, "bad")})
    finally:
        inside(coordinator, remove_sweep_ref, plan, "origin")
    assert "error: params.yaml: seed is -1; expected an integer from 0" in outcome["error"]
    assert "dvc exp run" in outcome["log"] and outcome["error"] in outcome["log"]


def test_the_slurm_job_script_renders_without_a_scheduler(coordinator):
    proc = run([sys.executable, "-m", "tools.cluster", "slurm", "--cores", "8", "--memory", "16GB",
                "--print-job-script"], coordinator, check=True)
    script = proc.stdout
    assert "#SBATCH -J ae-sweep" in script and "#SBATCH --mem=" in script
    assert "distributed.cli.dask_worker" in script and "--nworkers 8" in script
    assert script.count("--nthreads") == 1 and "--nthreads 1" in script
    assert "port" not in proc.stderr.lower(), proc.stderr  # no scheduler was started to render it
    for bad in (["--cores", "0"], ["--adapt-max", "x"], ["--bogus"]):
        line = run([sys.executable, "-m", "tools.cluster", "slurm", *bad], coordinator).stderr.strip()
        assert line.startswith("error: ") and "\n" not in line
