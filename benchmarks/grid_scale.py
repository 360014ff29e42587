"""The sweep's engine at scale, without training: stand-in cells on a LocalCluster of many worker processes.

    python -m benchmarks.grid_scale [--workers 8] [--cells 24] [--kills 3] [--out PATH]

Builds a stand-in project (a git remote and a DVC remote in a scratch folder) whose
pipeline is one stage that writes a metrics file from its params: every cell goes
through the real path (tools.cells.run_cell: clone, pull the run-cache, `dvc exp run`,
`dvc exp push`, `make share`) but trains nothing, so what is measured is the fixed
cost of a cell and the coordinator's own cost. It runs the cells on a Dask
LocalCluster of `--workers` processes through tools.dispatch.run_cells, SIGKILLs
`--kills` worker processes at random moments while cells run (the nanny starts a new
one; Dask reschedules the lost task), then checks on the git remote that every cell
was published exactly once. Prints and writes (JSON) the cells' fixed cost (median),
the coordinator's CPU time per cell and the wall time.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAND_IN = """stages:
  cell:
    cmd: python standin.py
    deps: [standin.py]
    params: [seed, train.latent_dim, train.threads]
    metrics:
      - metrics/cell.json:
          cache: false
"""
STAND_IN_SCRIPT = """import json
import os

import yaml

params = yaml.safe_load(open("params.yaml"))
value = (params["seed"] * 7 + params["train"]["latent_dim"]) % 97 / 97
os.makedirs("metrics", exist_ok=True)
json.dump({"value": value}, open("metrics/cell.json", "w"))
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@e", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def stand_in_project(folder: Path) -> dict:
    """A project with the stand-in pipeline, a bare git remote and a DVC remote; what every cell needs."""
    repo, origin, storage = folder / "repo", folder / "origin.git", folder / "storage"
    repo.mkdir(parents=True)
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools", repo / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "dvc.yaml").write_text(STAND_IN)
    (repo / "standin.py").write_text(STAND_IN_SCRIPT)
    (repo / "params.yaml").write_text("seed: 0\ntrain:\n  latent_dim: 0\n  threads: 1\n")
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(repo, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(storage)], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "stand-in pipeline")
    git(repo, "remote", "add", "origin", str(origin))
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "push", "-q", "origin", "main:main", f"{commit}:refs/sweeps/{commit}")
    return {"commit": commit, "patch": "", "code_key": commit[:7], "git_url": str(origin), "dvc_url": str(storage),
            "temp_dir": str(folder / "clones")}


def killer(cluster, kills: int, stop: threading.Event, killed: list) -> None:
    """SIGKILL a random busy worker process `kills` times, at random moments."""
    import psutil

    rng = random.Random(0)
    while len(killed) < kills and not stop.is_set():
        stop.wait(rng.uniform(2, 8))
        busy = []
        for worker in list(cluster.workers.values()):
            pid = getattr(getattr(worker, "process", None), "pid", None)
            try:
                if pid and psutil.Process(pid).children(recursive=True):
                    busy.append(pid)
            except psutil.NoSuchProcess:
                continue
        if busy:
            victim = rng.choice(busy)
            psutil.Process(victim).kill()
            killed.append(victim)


def run(args) -> dict:
    from distributed import Client, LocalCluster

    import tools.cells
    from tools.dispatch import run_cells

    folder = Path(tempfile.mkdtemp(prefix="grid-scale-"))
    try:
        plan = stand_in_project(folder)
        (folder / "clones").mkdir()
        specs = [{**plan, "seed": seed, "latent_dim": 4, "threads": 1,
                  "name": tools.cells.cell_name(seed, 4, plan["code_key"])} for seed in range(args.cells)]
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0") \
                as cluster, Client(cluster) as client:
            stop, killed = threading.Event(), []
            thread = threading.Thread(target=killer, args=(cluster, args.kills, stop, killed), daemon=True)
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            thread.start()
            result = run_cells(client, specs, tools.cells.run_cell, lambda outcome: None, 120, 10)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            stop.set()
        refs = git(folder / "repo", "ls-remote", "origin", "refs/exps/*").splitlines()
        names = [line.rsplit("/", 1)[-1] for line in refs]
        published_once = sorted(names) == sorted(spec["name"] for spec in specs)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        seconds = [o["seconds"] for o in result.outcomes if "error" not in o]
        return {"workers": args.workers, "cells": args.cells, "killed_workers": len(killed),
                "failed": [o["error"] for o in result.outcomes if "error" in o],
                "published_exactly_once": published_once, "refs": len(refs), "wall_seconds": round(wall, 1),
                "cell_fixed_cost_seconds_median": round(statistics.median(seconds), 1) if seconds else None,
                "coordinator_cpu_seconds_per_cell": round(cpu / args.cells, 3),
                "leftover_clones": len(list((folder / "clones").glob("*")))}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--cells", type=int, default=24)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/grid_scale.json")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    from stages.common.outputs.atomic import write_json

    write_json(args.out, report)


if __name__ == "__main__":
    main(sys.argv[1:])
