"""Is a slow baseline the benchmark's doing or the machine's? Interleaved runs of the notebook inside and outside it.

    python -m benchmarks.interleave [--data DIR] [--arch superres] [--train-limit N] [--rounds 3] [--out PATH]

Each round runs, one after the other:
1. `python -m benchmarks.speed --parts train --runs 1` for one architecture: the benchmark
   as it times the notebook (its notebook-way worker and the notebook's own code,
   benchmarks/notebook_literal.py, both started by the benchmark);
2. benchmarks/notebook_literal.py alone, as a user starts it from a fresh login shell:
   a clean environment (`env -i` with PATH, HOME, LANG and the variables this machine
   sets for its math libraries), a new working folder, after a pause.

If the notebook's code is slower inside the benchmark than alone in the same rounds,
the benchmark's way of starting children costs it; if both move together from round
to round, the machine does. Every run also records the cores' clock and the CPU time
the host stole from this VM. Writes JSON (default benchmarks/results/interleave.json)
and prints a table. The same seed in every run: the same arithmetic.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.notebook_way import MATH_ENV_PREFIXES  # noqa: E402
from benchmarks.settings import settings  # noqa: E402
from benchmarks.speed import (  # noqa: E402
    DEFAULT_DATA,
    NOTEBOOK_CACHE,
    cpu_model,
    limited_train_indices,
    machine_counters,
    machine_during,
)

WAY, CODE, ALONE, PROJECT = "notebook way", "notebook's code", "notebook's code alone", "project fp32"


def login_shell_env() -> dict:
    """What a fresh login shell has: the basics, and the variables the machine itself sets for its math
    libraries (they would be there for a user too); nothing a parent process or make added."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "TERM")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith(("OPENBLAS_CORETYPE", "OPENBLAS_L2"))}


def benchmark_round(arch: str, data: Path, limit, seed: int, scratch: Path) -> dict:
    out = scratch / "speed.json"
    args = ["--data", str(data), "--parts", "train", "--archs", arch, "--runs", "1", "--quality-epochs", "0",
            "--baseline-seeds", str(seed), "--out", str(out)]
    if limit:
        args += ["--train-limit", str(limit)]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    entry = json.loads(out.read_text())["train"][arch]
    return {WAY: entry["notebook_fp32"]["runs"][0], CODE: entry["literal_fp32"]["runs"][0],
            PROJECT: entry["project_fp32"]["runs"][0],
            "machine": entry["process"]["machine"]["literal fp32"][0]}


def standalone_round(arch: str, data: Path, limit, seed: int, scratch: Path, pause_seconds: float) -> dict:
    from benchmarks import notebook_way as notebook

    dataset = notebook.dataset_class_for(data)
    root = notebook.torchvision_root(data, dataset, NOTEBOOK_CACHE)
    chosen = settings()
    args = [arch, root, dataset, limit or "all", seed, chosen.batch_size, chosen.lr, chosen.latent_dim]
    if limit:
        import numpy as np

        keep = scratch / "keep.npy"
        np.save(keep, limited_train_indices(data, str(limit)))
        args.append(keep)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    time.sleep(pause_seconds)  # as a user's separate command: the machine idle a moment before
    before = machine_counters()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/notebook_literal.py"), *map(str, args)],
                          cwd=folder, env=login_shell_env(), capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return {ALONE: json.loads(proc.stdout.strip().splitlines()[-1])["seconds"],
            "machine": machine_during(before, machine_counters())}


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--arch", default="superres")
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pause-seconds", type=float, default=5, help="idle before each run alone (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/interleave.json")
    args = parser.parse_args(argv)
    data = args.data or next((d for d in DEFAULT_DATA if d.is_dir()), None)
    if data is None:
        sys.exit("error: no data folder; pass --data DIR holding the four IDX .gz files")
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        for number in range(args.rounds):
            inside = benchmark_round(args.arch, data, args.train_limit, args.seed, Path(scratch))
            alone = standalone_round(args.arch, data, args.train_limit, args.seed, Path(scratch), args.pause_seconds)
            rounds.append({"inside the benchmark": inside, "alone": alone})
            print(f"round {number + 1}: {json.dumps(rounds[-1])}", flush=True)
    math_env = {k: v for k, v in os.environ.items() if k.startswith(MATH_ENV_PREFIXES)}
    report = {"cpu": cpu_model(), "data": str(data), "arch": args.arch, "train_limit": args.train_limit,
              "math_env": math_env, "rounds": rounds}
    from stages.common.outputs.atomic import write_json

    write_json(args.out, report)
    print(table(report))


def _number(value, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def table(report: dict) -> str:
    inside = [r["inside the benchmark"] for r in report["rounds"]]
    alone = [r["alone"] for r in report["rounds"]]

    def median(runs: list, key: str) -> str:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        return _number(statistics.median(values)) if values else "–"

    lines = [f"{report['cpu']}, {report['arch']}, {report['data']} ({report['train_limit'] or 'all'} images)",
             f"| round | {WAY} (in benchmark) s | {CODE} (in benchmark) s | {ALONE} s | {PROJECT} s "
             "| MHz in / alone | stolen in / alone |", "|---|---|---|---|---|---|---|"]
    for number, (i, a) in enumerate(zip(inside, alone), 1):
        mi, ma = i.get("machine") or {}, a.get("machine") or {}
        lines.append(f"| {number} | {_number(i.get(WAY))} | {_number(i.get(CODE))} | {_number(a.get(ALONE))} | "
                     f"{_number(i.get(PROJECT))} | {_number(mi.get('mhz_start'), '.0f')} / "
                     f"{_number(ma.get('mhz_start'), '.0f')} | {_number(mi.get('steal_share'), '.1%')} / "
                     f"{_number(ma.get('steal_share'), '.1%')} |")
    lines.append(f"| median | {median(inside, WAY)} | {median(inside, CODE)} | {median(alone, ALONE)} | "
                 f"{median(inside, PROJECT)} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
