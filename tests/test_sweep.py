"""`make sweep` end to end on tiny data: the grid on this machine, its report, reruns, and an interrupted sweep.

Runs in a scratch git repository whose data.source is a relative, git-ignored folder
(cells run in temporary clones and must still get the data: from the shared
run-cache), with PATH stripped of the environment (as `.venv/bin/python -m
tools.sweep` from a shell that never activated it).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psutil
import pytest

from tests.conftest import data_source_for_e2e
from tests.stagerun import env, make_project, run, set_params, venv_path_hook_installed
from tools.cells import CLONE_PREFIX

GRID = {
    "archs": ["stacked", "superres"],
    "data": {"source": "data/src", "train_limit": 500, "test_limit": 100},
    "train": {"epochs": 1},
    "tsne": {"per_class": 5, "perplexity": 4},
    "baselines": {"train_limit": 200},
    "sweep": {"latent_dims": [4], "seeds": [1, 2], "jobs": 2, "steps": 6},  # 4 batches a pass: 1.5 passes
}


def git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], repo, check=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    repo = make_project(root / "repo", GRID)
    shutil.copytree(data_source_for_e2e(root), repo / "data" / "src")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/data/src/\n")
    run(["git", "init", "-q"], repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sweep")
    return repo


def sweep_env() -> dict:
    path = "/usr/bin:/bin" if venv_path_hook_installed() else env()["PATH"]
    return {**env(), "PATH": path}


def sweep(repo: Path, timeout: int, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tools.sweep", *args], cwd=repo, env=sweep_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def listening_beyond_loopback(pid: int) -> list:
    """The listening sockets of process `pid` and its children that accept more than loopback."""
    import ipaddress

    found = []
    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in family:
        try:
            sockets = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        found += [(process.pid, c.laddr) for c in sockets
                  if c.status == psutil.CONN_LISTEN and not ipaddress.ip_address(c.laddr.ip).is_loopback]
    return found


def test_the_grid_runs_here_reports_both_noises_and_reruns_nothing(repo):
    # While it runs, nothing the sweep starts (Dask's scheduler, worker, their HTTP servers) listens beyond
    # loopback: whoever reaches a Dask scheduler runs code as this user.
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep"], cwd=repo, env=sweep_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, exposed = [], []

    def watch():
        import time

        while proc.poll() is None:
            family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))] \
                if psutil.pid_exists(proc.pid) else []
            for pid in family:
                try:
                    seen.extend(c for c in psutil.Process(pid).net_connections(kind="inet")
                                if c.status == psutil.CONN_LISTEN)
                except psutil.Error:
                    pass
            exposed.extend(listening_beyond_loopback(proc.pid))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate(timeout=900)
    watcher.join(timeout=10)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    first = subprocess.CompletedProcess(proc.args, 0, stdout, stderr)
    assert seen, "the watcher saw no listening socket at all: it cannot have looked"
    assert exposed == [], exposed
    assert "2 cells (seeds x latent sizes); 0 finished, 2 to run" in first.stdout
    assert "2 cell(s) to run on this machine, 2 cell(s) at a time, 1 torch thread(s) each" in first.stdout
    assert first.stdout.count("done on") == 2 and "WARNING" not in first.stdout + first.stderr
    logs = sorted((repo / "plots/sweep/logs").glob("cell-s*-d4-*.log"))
    assert len(logs) == 2 and all("dvc exp run" in log.read_text() for log in logs)  # one log per cell
    # The pixels baseline, the same for every cell, ran once, before them: both cells, started together, restore it.
    assert all("Stage 'baseline_pixels' is cached - skipping run" in log.read_text() for log in logs)
    runs = read_csv(repo / "plots/sweep/runs.csv")
    assert sorted({(r["seed"], r["latent_dim"]) for r in runs}) == [("1", "4"), ("2", "4")]
    assert {r["name"] for r in runs} == {"stacked", "superres", "pixels", "pca"}
    # Every run is judged and kept: sweep.steps trained each autoencoder exactly 6 steps, whatever its epochs, too
    # few to beat predicting the mean image: each run failed, stays in runs.csv, and is in no mean or test.
    trained = [r for r in runs if r["name"] in ("stacked", "superres")]
    assert all(r["steps"] == "6" and r["failed"] == "True" and float(r["test_mse"]) >= float(r["mean_image_mse"]) > 0
               and r["converged"] == "" and 0 <= int(r["active_units"]) <= 4 for r in trained)  # 6 steps: no fifths
    results = read_csv(repo / "plots/sweep/results.csv")
    accuracy = {r["name"]: r for r in results if r["metric"] == "accuracy"}
    assert set(accuracy) == {"pixels", "pca"}
    assert all(r["seeds"] == "2" and int(r["images"]) >= 100 and r["noise"] == "seeds and test images"
               for r in accuracy.values())
    assert all(0 <= float(r["ci_low"]) <= float(r["mean"]) <= float(r["ci_high"]) <= 1 for r in accuracy.values())
    failures = {r["name"]: r for r in results if r["metric"] == ""}
    assert {name: (r["runs"], r["failed"]) for name, r in failures.items()} == {"stacked": ("2", "2"),
                                                                                "superres": ("2", "2")}
    assert float(failures["stacked"]["failed_ci_low"]) == pytest.approx(0.158, abs=0.001)  # Clopper-Pearson 2 of 2
    comparisons = read_csv(repo / "plots/sweep/comparisons.csv")
    assert len([c for c in comparisons if c["metric"] == "accuracy"]) == 1  # the two baselines alone
    report = (repo / "plots/sweep/report.md").read_text()
    assert "2 seed(s), 6 optimizer steps each" in report and "## Runs that did not train" in report
    assert "| Stacked AE | 2 of 2 [0.16, 1.00]; 0 not converged |" in report
    assert "Wall time of the sweep run that computed 2" in report
    assert "(rank " in report and "Holm family" in report
    # Where the cells' time went, from the stages' own facts (#44).
    cost = json.loads((repo / "plots/sweep/timing.json").read_text())["cell_cost"]
    assert cost["cells"] == 2 and cost["median_wall_seconds"] > 0
    parts = set(cost["median_seconds"])
    assert {"train@stacked steps", "svm@superres fit", "baseline_pca predict", "overhead"} <= parts
    assert "## Where a cell's time goes" in report
    assert (repo / "plots/sweep/latent_size.png").stat().st_size > 10_000
    assert not list(Path(tempfile.gettempdir()).glob(f"{CLONE_PREFIX}*-d4-*"))  # clones removed
    assert run(["git", "for-each-ref", "refs/sweeps"], repo).stdout == ""  # the sweep's ref too

    again = sweep(repo, 120)
    assert "0 to run" in again.stdout and "nothing to run" in again.stdout
    assert "Wall time of the sweep run that computed 2" in (repo / "plots/sweep/report.md").read_text()


def test_committing_the_results_loses_no_cell_and_a_new_seed_runs_alone(repo):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sweep results")
    after_commit = sweep(repo, 120)
    assert "0 to run" in after_commit.stdout, after_commit.stdout[-2000:]
    exps = subprocess.run([sys.executable, "-m", "tools.exps"], cwd=repo, env=sweep_env(), capture_output=True,
                          text=True, timeout=120)
    assert exps.returncode == 0 and exps.stdout.count("cell-s") == 2, exps.stdout + exps.stderr

    set_params(repo, {"sweep": {"seeds": [1, 2, 3]}})  # uncommitted: the sweep section changes no cell
    third = sweep(repo, 900)
    assert "3 cells (seeds x latent sizes); 2 finished, 1 to run" in third.stdout
    assert "3 seed(s)" in (repo / "plots/sweep/report.md").read_text()
    # The pixels baseline reads neither seed nor latent size: a new seed never fits it again (the committed
    # dvc.lock already holds it, from the sweep's run of it before the first cells).
    log, = (repo / "plots/sweep/logs").glob("cell-s3-d4-*.log")
    assert "Stage 'baseline_pixels' didn't change, skipping" in log.read_text()
    assert "Running stage 'baseline_pixels'" not in log.read_text()
    # One cell on two slots: it ran as two parts side by side (an architecture each, the PCA baseline with the
    # second), and the cell itself found their stages in the run-cache and ran only the report.
    assert "split into 2 parts each" in third.stdout
    for stage in ("train@stacked", "train@superres", "svm@superres", "baseline_pca"):
        assert f"Stage '{stage}' is cached - skipping run" in log.read_text(), stage
    assert "Running stage 'report'" in log.read_text()
    # The parts did the cell's work: their seconds count in the slots' busy time, and the line says so.
    assert "(after its parts, side by side: " in third.stdout
    timing = json.loads((repo / "plots/sweep/timing.json").read_text())
    assert len(timing["part_seconds"]) == 2 and min(timing["part_seconds"]) > timing["cell_seconds"][0]
    assert timing["busy_share"] > sum(timing["cell_seconds"]) / (2 * timing["wall_seconds"])
    git(repo, "checkout", "params.yaml")


def test_only_the_last_rounds_cells_are_split_among_idle_slots():
    from tools.sweep import split_tail

    specs = [{"name": f"c{i}", "seed": i} for i in range(5)]
    archs = ["superres", "conv", "stacked", "vae", "denoising"]
    out = split_tail(specs, 2, archs)  # 5 cells on 2 slots: the fifth would run alone
    assert [s["name"] for s in out] == ["c0", "c1", "c2", "c3", "c4"] and [bool(s.get("parts")) for s in out] == \
        [False, False, False, False, True]
    first, second = out[-1]["parts"]
    assert first["targets"] == [f"{stage}@{arch}" for arch in ("superres", "stacked", "denoising")
                                for stage in ("train", "latents", "tsne", "svm")]
    assert second["targets"][-1] == "baseline_pca" and "train@conv" in second["targets"]
    assert first["name"] == "c4-part1" and first["seed"] == 4
    assert split_tail(specs[:4], 2, archs) == specs[:4]  # even rounds: nothing to fill
    assert split_tail(specs[:3], 4, archs)[-1].get("parts") is None  # 3 of 4 slots busy: one idle, no pair
    assert len(split_tail(specs[:1], 4, archs)[0]["parts"]) == 4


def test_an_uncommitted_change_runs_its_own_cells(repo):
    set_params(repo, {"tsne": {"perplexity": 3}})
    try:
        proc = sweep(repo, 900)
        assert "2 cells (seeds x latent sizes); 0 finished, 2 to run" in proc.stdout
        names = json.dumps(run(["git", "for-each-ref", "refs/exps"], repo, check=True).stdout)
        assert names.count("cell-s1-d4") == 2  # a cell of each configuration, side by side
    finally:
        run(["git", "checkout", "params.yaml"], repo, check=True)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def training_processes(seed: int) -> list[psutil.Process]:
    """Processes running a stage in the clone of a cell of `seed` (they live in sessions of their own)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if ("stages" in (proc.info["cmdline"] or [])
                    and f"{CLONE_PREFIX}cell-s{seed}-" in (proc.info["cwd"] or "")):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_leaves_no_process_and_no_clone_behind(repo, signum):
    set_params(repo, {"sweep": {"seeds": [7, 8]}})
    proc = subprocess.Popen([sys.executable, "-m", "tools.sweep"], cwd=repo, env=sweep_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = threading.Event()

    def watch():
        while proc.poll() is None and not started.is_set():
            if training_processes(7):
                started.set()
            started.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        assert started.wait(300), "no cell started training"
        before = [p.pid for p in descendants(proc.pid)] + [p.pid for p in training_processes(7)]
        # Ctrl-C at a terminal reaches the whole foreground process group; `timeout` and kill, the sweep only.
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "Traceback" not in stderr, stderr
        assert [line for line in stderr.splitlines() if line.startswith("error: ")], stderr
        alive = [pid for pid in before if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        gone, still = psutil.wait_procs([psutil.Process(pid) for pid in alive], timeout=30)
        assert not still, [p.cmdline() for p in still]
        assert not training_processes(7) and not training_processes(8)
        assert not list(Path(tempfile.gettempdir()).glob(f"{CLONE_PREFIX}cell-s7-*"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        run(["git", "checkout", "params.yaml"], repo, check=True)
