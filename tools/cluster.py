"""`make sweep` on a Dask cluster: one task per grid cell, each an ordinary DVC experiment shared through remotes.

    python -m tools.sweep --scheduler tcp://host:8786 [--git-remote origin] [--cell-threads 1]
    python -m tools.cluster slurm --workers 4 --cores 8 --memory 16GB [--print-job-script]

The machine that starts the sweep (the coordinator) pushes the commit being swept
to the git remote (as refs/sweeps/<commit>) and the prepared data with the
run-cache to the DVC remote, then submits one task per missing cell. A task runs
on a Dask worker: it clones the commit, pulls the run-cache (`dvc pull
--run-cache`), runs `dvc exp run --pull -S seed=… -S train.latent_dim=… -S
train.threads=…` (stages another machine already ran are restored, not rerun),
and publishes the experiment: `dvc exp push` to the git remote, its outputs and
run-cache to the DVC remote (`make share`'s mechanism). The coordinator then pulls
the experiments' refs, so `dvc exp show`, `make exps` and the sweep's report list
every cell, wherever it ran.

Faults: a worker that dies mid-cell loses its task to another worker (Dask
reschedules it; the cell's experiment is pushed with --force under a name fixed by
the cell and commit, so a cell appears once). A cell that fails (a bad parameter,
say) is returned with its one-line error and the others go on. A sweep started
again pulls what was published and submits only the missing cells.

Every cell runs with the same `train.threads` (`--cell-threads`, default 1), so
results do not depend on which machine ran them; start each machine's workers
with `--nthreads 1` and as many processes as it has cores per cell thread.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from stages.common.errors import PipelineError, run_stage

SWEEP_REFS = "refs/sweeps"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cell_name(seed: int, latent_dim: int, commit: str) -> str:
    """The experiment name of a cell: fixed by the cell and the commit, so a rerun replaces, never adds."""
    return f"cell-s{seed}-d{latent_dim}-{commit[:7]}"


# --------------------------------------------------------------------------- on a worker
def _kill_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A worker killed mid-cell must not leave its `dvc exp run` training on as an orphan.
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(args: list, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=_kill_with_parent)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The stage's own one-line error if it printed one, else DVC's, else the last line."""
    lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
    for prefix in ("error: ", "ERROR: "):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1][:500]
    return (lines[-1] if lines else f"exit status {proc.returncode}")[:500]


def run_cell(spec: dict) -> dict:
    """One grid cell on this machine: clone, pull, `dvc exp run`, publish. Returns the outcome, never raises
    for the cell's own failure (a bad parameter fails the same way everywhere; retrying it helps nothing)."""
    import shutil
    import socket
    import tempfile

    outcome = {"seed": spec["seed"], "latent_dim": spec["latent_dim"], "name": spec["name"],
               "host": socket.gethostname(), "pid": os.getpid()}
    env = {**os.environ, **{name: str(spec["threads"]) for name in THREAD_VARIABLES}, "DVC_NO_ANALYTICS": "1"}
    work = Path(tempfile.mkdtemp(prefix=f"ae-{spec['name']}-"))
    ref = f"{SWEEP_REFS}/{spec['commit']}"
    try:
        steps = [
            ["git", "clone", "-q", "--no-checkout", spec["git_url"], str(work)],
            ["git", "fetch", "-q", "origin", f"+{ref}:{ref}"],
            ["git", "checkout", "-q", spec["commit"]],
            ["dvc", "remote", "add", "--local", "--force", "--default", "sweep", spec["dvc_url"]],
        ]
        for step in steps:
            proc = _run(step, cwd=None if step[1] == "clone" else work, env=env)
            if proc.returncode:
                return {**outcome, "error": f"{' '.join(step[:3])}: {error_line(proc)}"}
        _run(["dvc", "pull", "--run-cache", "--quiet"], cwd=work, env=env)  # nothing there yet is fine
        proc = _run(["dvc", "exp", "run", "--pull", "--name", spec["name"], "--set-param", f"seed={spec['seed']}",
                     "--set-param", f"train.latent_dim={spec['latent_dim']}",
                     "--set-param", f"train.threads={spec['threads']}"], cwd=work, env=env)
        if proc.returncode:
            return {**outcome, "error": error_line(proc)}
        for step in (["dvc", "exp", "push", "--force", "--run-cache", "origin", spec["name"]],
                     [sys.executable, "-m", "tools.share"]):
            proc = _run(step, cwd=work, env=env)
            if proc.returncode:
                return {**outcome, "error": f"publishing: {error_line(proc)}"}
        return outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- on the coordinator
def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode:
        raise PipelineError(f"git {' '.join(args)}: {error_line(proc)}")
    return proc.stdout.strip()


def dvc_remote_url() -> str:
    """The default DVC remote's URL as DVC resolves it (a local path made absolute), for every worker's clone."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        config = Repo(".").config
    except DvcException as err:
        raise PipelineError(f"dvc: {' '.join(str(err).split())}") from None
    name = config["core"].get("remote")
    if not name or name not in config["remote"]:
        raise PipelineError("no default DVC remote; add one that every machine reaches: "
                            "dvc remote add -d shared s3://bucket/path (or ssh://…, or a shared folder)")
    return str(config["remote"][name]["url"])


def prepare_coordinator(git_remote: str) -> dict:
    """Check the workspace, publish the commit and the prepared data; what every task needs."""
    from tools.exps import dvc
    from tools.share import main as share

    if _git("status", "--porcelain", "--untracked-files=no"):
        raise PipelineError("the workspace has uncommitted changes; commit them first (workers check out the commit)")
    commit = _git("rev-parse", "HEAD")
    git_url = _git("remote", "get-url", git_remote)
    if "://" not in git_url and ":" not in git_url.split("/")[0] and not os.path.isabs(git_url):
        git_url = str(Path(git_url).resolve())
    _git("push", "--quiet", "--force", git_remote, f"HEAD:{SWEEP_REFS}/{commit}")
    dvc_url = dvc_remote_url()
    # Workers restore the data stages from the run-cache, so they need no data.source folder.
    dvc("repro", "--pull", "prepare", capture=False)
    share([])  # the workspace's outputs, the run-cache and the runs' outputs, as `make share`
    return {"commit": commit, "git_url": git_url, "dvc_url": dvc_url}


def pull_experiments(git_remote: str, names: list | None = None) -> None:
    """The experiments of HEAD published on the git remote (refs only: metrics and params live in git)."""
    from tools.exps import dvc

    dvc("exp", "pull", "--no-cache", "--force", git_remote, *(names or ["--rev", "HEAD"]))


def run_on_cluster(cells: list, threads: int, scheduler: str, git_remote: str, done: set) -> tuple[dict, list]:
    """Submit every cell not in `done` to the Dask scheduler; (timing, failed outcomes)."""
    import cloudpickle
    from distributed import Client, as_completed

    import tools.cluster

    # Neither the scheduler nor the workers need this project importable: the task travels by value.
    # Dask tries plain pickle first, which would send a module function by reference, so the task is
    # a local function (plain pickle refuses it, cloudpickle sends it and this module's code along).
    cloudpickle.register_pickle_by_value(tools.cluster)

    def task(spec: dict) -> dict:
        return run_cell(spec)

    shared = prepare_coordinator(git_remote)
    todo = [cell for cell in cells if cell not in done]
    print(f"sweep: {len(cells)} cells; {len(todo)} to run on the Dask cluster at {scheduler}, "
          f"{threads} thread(s) each", flush=True)
    started, failed, names, workers = time.perf_counter(), [], [], 0
    if todo:
        with Client(scheduler, timeout="30s") as client:
            workers = len(client.scheduler_info()["workers"])
            futures = [client.submit(task, {**shared, "seed": seed, "latent_dim": dim, "threads": threads,
                                                "name": cell_name(seed, dim, shared["commit"])},
                                     key=cell_name(seed, dim, shared["commit"]), pure=False)
                       for seed, dim in todo]
            for future in as_completed(futures):
                outcome = future.result()
                cell = f"seed {outcome['seed']}, latent {outcome['latent_dim']}"
                if "error" in outcome:
                    failed.append(outcome)
                    print(f"sweep: cell {cell} failed on {outcome['host']}: {outcome['error']}", flush=True)
                else:
                    names.append(outcome["name"])
                    print(f"sweep: cell {cell} done on {outcome['host']}", flush=True)
    if names:
        pull_experiments(git_remote, names)
    timing = {"wall_seconds": round(time.perf_counter() - started, 1), "cells": len(todo),
              "where": f"the Dask cluster at {scheduler} ({workers} worker(s)), {threads} thread(s) per cell"}
    return timing, failed


# --------------------------------------------------------------------------- starting workers on SLURM
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description="Start Dask workers for make sweep.")
    sub = parser.add_subparsers(dest="kind", required=True)
    slurm = sub.add_parser("slurm", help="a scheduler here and workers as SLURM jobs (dask-jobqueue)")
    slurm.add_argument("--workers", type=int, default=1, help="SLURM jobs, each one machine's worth of workers")
    slurm.add_argument("--cores", type=int, default=4, help="cores per job (one single-threaded worker each)")
    slurm.add_argument("--memory", default="16GB", help="memory per job")
    slurm.add_argument("--walltime", default="04:00:00")
    slurm.add_argument("--queue", help="SLURM partition")
    slurm.add_argument("--print-job-script", action="store_true", help="print the job script and submit nothing")
    args = parser.parse_args(argv)
    from dask_jobqueue import SLURMCluster

    python = str(Path(sys.executable))
    cluster = SLURMCluster(cores=args.cores, processes=args.cores, memory=args.memory, walltime=args.walltime,
                           queue=args.queue, python=python, job_name="ae-sweep",
                           worker_extra_args=["--nthreads", "1"], scheduler_options={"dashboard_address": ":8787"})
    if args.print_job_script:
        print(cluster.job_script())
        cluster.close()
        return
    cluster.scale(jobs=args.workers)
    print(f"scheduler: {cluster.scheduler_address}; run: python -m tools.sweep --scheduler "
          f"{cluster.scheduler_address}  (Ctrl-C here stops the workers)", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        cluster.close()


if __name__ == "__main__":
    run_stage(main, "cluster", sys.argv[1:])
