"""A repository with a long history and many finished sweep cells, made in seconds without training.

Each experiment is made as DVC makes one: a commit on top of its baseline whose tree
holds its params.yaml, its metrics files and a dvc.lock naming its per-image outputs,
under refs/exps/<baseline[:2]>/<baseline[2:]>/<name>; the per-image files themselves
go into the DVC cache under their md5. For the tests of tools/experiments.py, the
no-op sweep and `make exps`, and for the measurement in docs/speed.md:

    .venv/bin/python -m tests.fake_experiments /tmp/long-history 120 60
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tests.stagerun import make_project

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@e"]
ARCHS = ["stacked", "superres"]
N_TEST = 200


def _git(repo: Path, *args: str, env: dict | None = None, stdin: str | None = None) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, env={**os.environ, **(env or {})}, input=stdin,
                          capture_output=True, text=True, check=True).stdout.strip()


def _blob(repo: Path, data: bytes) -> str:
    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True,
                          check=True).stdout.decode().strip()


def _cached(repo: Path, arrays: dict | bytes) -> str:
    """An .npz of `arrays` (or the bytes given) in the repository's DVC cache; its md5."""
    if isinstance(arrays, bytes):
        data = arrays
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
    md5 = hashlib.md5(data).hexdigest()
    path = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


def cell_files(repo: Path, seed: int, latent_dim: int, metrics: dict | None = None) -> dict:
    """path -> bytes of a cell's params.yaml, metrics and dvc.lock (its per-image files put in the cache)."""
    rng = np.random.default_rng(seed * 1000 + latent_dim)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seed"], params["train"]["latent_dim"] = seed, latent_dim
    params["train"]["threads"] = params["sweep"]["threads"]
    if params["sweep"].get("steps") is not None:  # as tools/cells.py sets a cell's budget
        params["train"]["steps"], params["train"]["epochs"] = params["sweep"]["steps"], None
    y_test = (np.arange(N_TEST) % 10).astype(np.uint8)
    files, outs = {"params.yaml": yaml.safe_dump(params, sort_keys=False).encode()}, []
    for name in [*ARCHS, "pixels", "pca"]:
        predicted = np.where(rng.random(N_TEST) < 0.9, y_test, (y_test + 1) % 10).astype(np.uint8)
        outs.append({"path": f"data/predictions/{name}.npz",
                     "md5": _cached(repo, {"predicted": predicted, "y_test": y_test})})
        values = {"accuracy": float((predicted == y_test).mean())}
        files[f"metrics/svm_{name}.json"] = json.dumps({**values, **(metrics or {}).get(name, {})}).encode()
    for arch in ARCHS:
        errors = {"test_mse": rng.random(N_TEST) / 50, "denoise_mse": rng.random(N_TEST) / 20}
        outs.append({"path": f"data/errors/{arch}.npz", "md5": _cached(repo, errors)})
        files[f"metrics/train_{arch}.json"] = json.dumps(
            {"test_mse": float(errors["test_mse"].mean()), "denoise_mse": float(errors["denoise_mse"].mean())}).encode()
        facts = {"mean_image_mse": 0.07, "steps": 2345, "loss_drop_last_fifth": 0.01,  # a file of its own per run
                 "process_seconds": round(60 + rng.random(), 3), "seconds": 50.0}
        outs.append({"path": f"metrics/run/train_{arch}.json", "md5": _cached(repo, json.dumps(facts).encode())})
        outs.append({"path": f"metrics/run/latents_{arch}.json",
                     "md5": _cached(repo, json.dumps({"active_units": min(latent_dim, 5) + seed % 2}).encode())})
        files[f"metrics/tsne_{arch}.json"] = json.dumps({"trustworthiness": 0.9 + rng.random() / 20}).encode()
    lock = {"schema": "2.0", "stages": {"cells": {"cmd": "made by tests/fake_experiments.py",
                                                  "outs": [{**o, "hash": "md5"} for o in outs]}}}
    files["dvc.lock"] = yaml.safe_dump(lock).encode()
    return files


def add_experiment(repo: Path, baseline: str, name: str, files: dict) -> str:
    """An experiment commit of `files` on top of `baseline`, under DVC's ref for it; the commit."""
    index = repo / ".git" / f"index-{name}"
    env = {"GIT_INDEX_FILE": str(index)}
    _git(repo, "read-tree", baseline, env=env)
    entries = "".join(f"100644 {_blob(repo, data)}\t{path}\n" for path, data in files.items())
    _git(repo, "update-index", "--index-info", env=env, stdin=entries)
    tree = _git(repo, "write-tree", env=env)
    index.unlink()
    commit = _git(repo, "commit-tree", tree, "-p", baseline, "-m", f"dvc: commit experiment {name}")
    _git(repo, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}", commit)
    return commit


def long_history(folder: Path, commits: int, cells: list[tuple[int, int]], sweep: dict | None = None) -> Path:
    """A project with `commits` commits and one finished experiment per (seed, latent_dim) of `cells`, all run
    from the last commit: nothing for a sweep of those cells to run."""
    repo = make_project(folder, {"archs": ARCHS, "sweep": sweep or {}})
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    for i in range(commits - 1):
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"history {i}")
    head = _git(repo, "rev-parse", "HEAD")
    for seed, dim in cells:
        add_experiment(repo, head, f"cell-s{seed}-d{dim}-{head[:7]}", cell_files(repo, seed, dim))
    return repo


def main(argv: list[str]) -> None:
    folder, commits, experiments = Path(argv[0]), int(argv[1]), int(argv[2])
    seeds = list(range(1, experiments // 5 + 1))
    cells = [(seed, dim) for dim in (2, 4, 8, 16, 32) for seed in seeds][:experiments]
    repo = long_history(folder, commits, cells, {"seeds": seeds, "latent_dims": [2, 4, 8, 16, 32]})
    print(f"{repo}: {commits} commits, {len(cells)} experiments")


if __name__ == "__main__":
    main(sys.argv[1:])
