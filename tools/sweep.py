"""`make sweep`: the seeds x latent-size grid as DVC experiments, then a report a reviewer can read.

    python -m tools.sweep [--jobs N] [--report-only]
    python -m tools.sweep --scheduler tcp://host:8786 [--git-remote origin] [--cell-threads 1]

Queues `dvc exp run --queue -S seed=S -S train.latent_dim=D` for every cell of
sweep.seeds x sweep.latent_dims (each worker's torch threads set to its share of
the cores), runs the queue with sweep.jobs workers (`dvc exp run --run-all --jobs`),
then reads `dvc exp show --json` and writes plots/sweep/:
- runs.csv: every cell's results, one row per cell and feature space;
- results.csv: per latent size and feature space, each metric's number of seeds,
  mean, standard deviation and Student-t 95% interval;
- comparisons.csv: every pair at each latent size and metric, paired t-test by seed,
  Holm-corrected, with the mean difference, its interval, the effect size and
  P(A better than B);
- report.md and latent_size.png: the means with their intervals, and the ranks in groups.
A cell that already has a finished experiment with the same params, on any commit
with the same pipeline code (stages/, dvc.yaml), is not queued again: adding a seed
runs only that seed's cells, a repeated sweep only redraws the report, and
committing the results (the cells then hang off the parent commit) loses none.

With `--scheduler` (or DASK_SCHEDULER_ADDRESS set) the cells run as tasks on that
Dask cluster instead of DVC's local queue, each an ordinary DVC experiment published
through the git and DVC remotes (tools/cluster.py). The cluster is named only on the
command line or in the environment: it changes no experiment's params or results.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from stages.common.evaluation.seeds import ALPHA, BASELINE_NAMES, METRICS, aggregate, compare, ranks
from stages.common.models.catalogue import CATALOGUE, display_name
from stages.common.models.device import usable_cores
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.read import check_numbers, read_json
from stages.common.settings import PARAMS_FILE, load_yaml, read
from tools.exps import dvc, experiments, flatten

OUT = Path("plots/sweep")
TIMING = OUT / "timing.json"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
ATTEMPTS = 2
SOURCES = {  # metric -> metrics file pattern
    "test_mse": "metrics/train_{}.json",
    "denoise_mse": "metrics/train_{}.json",
    "accuracy": "metrics/svm_{}.json",
    "trustworthiness": "metrics/tsne_{}.json",
}


def matches(params: dict, settings: dict) -> bool:
    """Whether an experiment's params.yaml has `settings` (dotted key -> value, as `flatten` gives) besides its cell."""
    given = flatten(params)
    return all(given.get(key) == value for key, value in settings.items())


def finished_cells(found: list[dict], settings: dict, same_code=lambda baseline: True) -> dict:
    """(seed, latent_dim) -> the newest finished experiment of that cell with these settings.

    `same_code(baseline)` says whether an experiment's commit ran the code the workspace has,
    so cells run before a commit that changed only results or docs still count.
    """
    cells = {}
    for exp in found:  # exp show lists newest first
        params = exp["params"]
        if ("train" in params and "seed" in params and matches(params, settings)
                and same_code(exp.get("baseline"))):
            cells.setdefault((params["seed"], params["train"]["latent_dim"]), exp)
    return cells


# What decides a cell's results besides its params: the pipeline's code and its wiring.
CODE = ("stages", "dvc.yaml")


def code_version(rev: str) -> tuple | None:
    """The git trees of CODE at `rev` (None where git cannot say)."""
    import subprocess

    proc = subprocess.run(["git", "rev-parse", *(f"{rev}:{path}" for path in CODE)], capture_output=True, text=True)
    return tuple(proc.stdout.split()) if proc.returncode == 0 else None


def same_code_as_head():
    """A test of a baseline commit: True where its CODE is HEAD's (each commit asked once)."""
    head, known = code_version("HEAD"), {}

    def same(baseline) -> bool:
        if baseline not in known:
            known[baseline] = baseline is not None and code_version(baseline) == head
        return known[baseline]

    return same


def cell_settings(params: dict, threads: int) -> dict:
    """Every param a cell must share with this sweep: all of params.yaml but the cell's own and the sweep's."""
    settings = {key: value for key, value in flatten(params).items()
                if key not in ("seed", "train.latent_dim") and not key.startswith("sweep.")}
    settings["train.threads"] = threads
    return settings


def cell_rows(cells: dict, archs: list) -> list[dict]:
    """One row per cell and feature space: every architecture in `archs`, then the baselines that ran."""
    rows = []
    for (seed, dim), exp in sorted(cells.items(), key=lambda item: (item[0][1], item[0][0])):
        metrics = exp["metrics"]
        for name in [*archs, *BASELINE_NAMES]:
            row = {"seed": seed, "latent_dim": dim, "name": name, "experiment": exp["name"]}
            for metric, pattern in SOURCES.items():
                row[metric] = metrics.get(pattern.format(name), {}).get(metric)
            if any(row[metric] is not None for metric in SOURCES):
                rows.append(row)
    return rows


def label(name: str) -> str:
    return BASELINE_NAMES.get(name) or display_name(name)


def _shown(value, metric: str) -> float:
    return value * 100 if METRICS[metric][2] else value


def _spec(metric: str) -> str:
    return ".2f" if METRICS[metric][2] else ".4f" if metric == "trustworthiness" else ".6f"


def figure(summary: list[dict], names: list, title: str):
    from stages.common.outputs.charts import plt, series_colour

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4.3))
    dims = sorted({r["latent_dim"] for r in summary})
    baseline_style = {"pixels": ("#7f7f7f", "s"), "pca": ("#303030", "D")}
    for ax, (metric, (metric_label, _, _)) in zip(axes, METRICS.items()):
        for i, name in enumerate(names):
            points = [r for r in summary if r["name"] == name and r["metric"] == metric]
            if not points:
                continue
            # Each series a little to the side of the true latent size, so intervals do not hide each other.
            dodge = 2 ** (0.08 * (i - (len(names) - 1) / 2))
            x = [r["latent_dim"] * dodge for r in points]
            y = [_shown(r["mean"], metric) for r in points]
            low = [y_i - _shown(r["ci_low"], metric) if r["ci_low"] is not None else 0 for y_i, r in zip(y, points)]
            high = [_shown(r["ci_high"], metric) - y_i if r["ci_high"] is not None else 0
                    for y_i, r in zip(y, points)]
            colour, marker = baseline_style.get(name, (series_colour(i), "o"))
            ax.errorbar(x, y, yerr=[low, high], marker=marker, capsize=3, label=label(name), color=colour,
                        linestyle="--" if name in BASELINE_NAMES else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        if metric.endswith("mse"):
            ax.set_yscale("log")
        ax.set_xlabel("latent size (series spread sideways to stay readable)")
        ax.set_title(metric_label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def markdown(summary: list[dict], comparisons: list[dict], rank: dict, names: list, title: str,
             timing: dict | None, failed: list | None = None) -> str:
    dims = sorted({r["latent_dim"] for r in summary})
    seeds = max((r["n"] for r in summary), default=0)
    lines = [f"# {title}", "", "![results against latent size](latent_size.png)", ""]
    if timing:
        lines += [f"Wall time of the sweep run that computed {timing['cells']} of these cells: "
                  f"{timing['wall_seconds']:.0f} s on {timing['where']}.", ""]
    if failed:
        lines += ["## Failed cells", "", "| seed | latent size | error |", "|---|---|---|"]
        lines += [f"| {f['seed']} | {f['latent_dim']} | {f['error'].replace('|', '/')} |" for f in failed]
        lines.append("")
    lines += [
        f"Each cell: the mean over seeds ± the half-width of its Student-t 95% interval, the number of seeds, and "
        f"the rank. Every pair of feature spaces is compared at each latent size and metric by a paired t-test "
        f"over the seeds they share (paired by seed), the p-values Holm-corrected within that latent size and "
        f"metric, level {ALPHA}. A rank is 1 + the number of feature spaces significantly better; those that share "
        f"a rank are indistinguishable with these seeds. comparisons.csv holds every pair with its mean difference, "
        f"interval, effect size and P(better).", ""]
    for metric, (metric_label, higher, _) in METRICS.items():
        present = [n for n in names if any(r["name"] == n and r["metric"] == metric for r in summary)]
        if not present:
            continue
        lines += [f"## {metric_label} ({'higher' if higher else 'lower'} is better)", "",
                  "| feature space | " + " | ".join(f"latent {d}" for d in dims) + " |", "|---|" + "---|" * len(dims)]
        for name in present:
            cells = []
            for dim in dims:
                r = next((r for r in summary if r["name"] == name and r["metric"] == metric
                          and r["latent_dim"] == dim), None)
                if r is None:
                    cells.append("–")
                    continue
                mean = format(_shown(r["mean"], metric), _spec(metric))
                half = ("" if r["ci_high"] is None
                        else " ± " + format(_shown(r["ci_high"], metric) - _shown(r["mean"], metric), _spec(metric)))
                cells.append(f"{mean}{half} (n={r['n']}, rank {rank[(dim, metric)][name]})")
            lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
        lines.append("")
        for dim in dims:
            groups = {}
            for name, value in rank.get((dim, metric), {}).items():
                groups.setdefault(value, []).append(label(name))
            shared = [g for g in groups.values() if len(g) > 1]
            if shared:
                lines.append(f"- latent {dim}: indistinguishable with {seeds} seeds: "
                             + "; ".join(", ".join(g) for g in shared) + ".")
        significant = [c for c in comparisons if c["metric"] == metric and c["significant"]]
        lines += ["", f"Significant differences ({len(significant)} of "
                  f"{sum(c['metric'] == metric for c in comparisons)} pairs):", ""]
        if significant:
            lines += ["| latent | better | than | mean difference [95% interval] | effect size | p (Holm) "
                      "| P(better) |", "|---|---|---|---|---|---|---|"]
            for c in significant:
                winner, loser = c["better"], c["b"] if c["better"] == c["a"] else c["a"]
                sign = 1 if winner == c["a"] else -1
                diff = sorted(_shown(sign * v, metric) for v in (c["ci_low"], c["ci_high"]))
                effect = "–" if c["effect_size"] is None else f"{abs(c['effect_size']):.1f}"
                p_better = c["p_improvement"] if winner == c["a"] else 1 - c["p_improvement"]
                lines.append(f"| {c['latent_dim']} | {label(winner)} | {label(loser)} | "
                             f"{format(_shown(abs(c['mean_diff']), metric), _spec(metric))} "
                             f"[{format(diff[0], _spec(metric))}, {format(diff[1], _spec(metric))}] | {effect} | "
                             f"{c['p_holm']:.3g} | {p_better:.2f} |")
        else:
            lines.append("None: no difference is larger than the noise of these seeds.")
        lines.append("")
    return "\n".join(lines)


def run_grid(cells: list, settings: dict, jobs: int, threads: int) -> dict | None:
    """Queue and run the cells without a finished experiment here; the timing, or None when none was missing."""
    todo = [cell for cell in cells if cell not in finished_cells(experiments(show()), settings, same_code_as_head())]
    print(f"sweep: {len(cells)} cells (seeds x latent sizes); {len(todo)} to run with {jobs} worker(s) of "
          f"{threads} thread(s) each", flush=True)
    if not todo:
        print("sweep: nothing to run; redrawing the report", flush=True)
        return None
    started = time.perf_counter()
    # OpenMP and BLAS pools (t-SNE, scikit-learn, oneDAL) get the same share as torch:
    # oversubscribed OpenMP threads spin-wait and ran t-SNE many times slower.
    share = {name: str(threads) for name in THREAD_VARIABLES}
    for attempt in range(1, ATTEMPTS + 1):
        for seed, dim in todo:
            dvc("exp", "run", "--queue", "-S", f"seed={seed}", "-S", f"train.latent_dim={dim}",
                "-S", f"train.threads={threads}")
        dvc("exp", "run", "--run-all", "--jobs", str(jobs), capture=False, env={**os.environ, **share})
        todo = [cell for cell in cells
                if cell not in finished_cells(experiments(show()), settings, same_code_as_head())]
        if not todo:
            break
        if attempt < ATTEMPTS:
            # Two workers finishing at once can lose one experiment's ref (DVC 3.67);
            # queued again, its stages come straight from the run-cache.
            print(f"sweep: no experiment recorded for cells {todo}; queueing them again", flush=True)
    if todo:
        raise PipelineError(f"sweep: no finished experiment for cells (seed, latent size) {todo}; "
                            "see `dvc queue logs`")
    wall = time.perf_counter() - started
    print(f"sweep: experiments finished in {wall:.0f} s", flush=True)
    return {"wall_seconds": round(wall, 1), "cells": len(cells), "where": f"{jobs} worker(s) x {threads} thread(s)"}


def last_timing() -> dict | None:
    """The wall time the last sweep that ran cells recorded, if plots/sweep/timing.json holds one."""
    if not TIMING.is_file():
        return None
    timing = read_json(TIMING, "sweep")
    if not isinstance(timing.get("where"), str):
        return None  # none recorded, or from another version: the report then gives no wall time
    check_numbers(timing, TIMING, "sweep", ("wall_seconds", "cells"))
    return timing


def show() -> list:
    # Every commit's experiments: after the sweep's results are committed, its cells hang off the parent.
    return json.loads(dvc("exp", "show", "--json", "--all-commits"))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="parallel workers (default: sweep.jobs)")
    parser.add_argument("--report-only", action="store_true", help="only redraw the report from dvc exp show")
    parser.add_argument("--scheduler", default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
                        help="run the cells on this Dask scheduler (default: $DASK_SCHEDULER_ADDRESS; none: here)")
    parser.add_argument("--git-remote", default="origin", help="git remote the Dask workers clone from")
    parser.add_argument("--cell-threads", type=int, default=1, help="torch threads of every cell on the cluster")
    args = parser.parse_args(argv)
    params = read(("archs", "data.dataset", "train.epochs", "sweep"), catalogue=CATALOGUE)
    sweep, epochs = params["sweep"], params["train.epochs"]
    jobs = args.jobs or sweep.jobs
    if not 1 <= jobs <= 64:
        raise PipelineError(f"--jobs is {jobs}; expected an integer from 1 to 64")
    if not 1 <= args.cell_threads <= 4096:
        raise PipelineError(f"--cell-threads is {args.cell_threads}; expected an integer from 1 to 4,096")
    threads = args.cell_threads if args.scheduler else max(1, usable_cores() // jobs)
    cells = [(seed, dim) for dim in sweep.latent_dims for seed in sweep.seeds]
    # What every experiment of this sweep shares; an old experiment with other values is not reused.
    settings = cell_settings(load_yaml(PARAMS_FILE), threads)
    outputs = OutputSet([OUT / name for name in ("report.md", "runs.csv", "results.csv", "comparisons.csv",
                                                 "latent_size.png", "timing.json")])

    failed = []
    if args.report_only:
        timing = None
    elif args.scheduler:
        from tools.cluster import pull_experiments, run_on_cluster

        pull_experiments(args.git_remote)  # what an interrupted sweep already published
        done = set(finished_cells(experiments(show()), settings, same_code_as_head()))
        timing, failed = run_on_cluster(cells, threads, args.scheduler, args.git_remote, done)
    else:
        timing = run_grid(cells, settings, jobs, threads)
    found = finished_cells(experiments(show()), settings, same_code_as_head())
    rows = cell_rows({cell: found[cell] for cell in cells if cell in found}, params["archs"])
    if not rows:
        raise PipelineError("no finished sweep experiment found in `dvc exp show`; run `make sweep` first")
    if timing is None:
        timing = last_timing()

    import pandas as pd

    summary, comparisons = aggregate(rows), compare(rows)
    rank = ranks(rows, comparisons)
    names = list(dict.fromkeys(r["name"] for r in rows))
    n_seeds = len({r["seed"] for r in rows})
    title = (f"Seeds x latent-size sweep on {params['data.dataset']}: {n_seeds} seed(s), "
             f"{epochs} epoch{'s' if epochs != 1 else ''} each")
    outputs.text(OUT / "runs.csv", pd.DataFrame(rows).assign(feature_space=[label(r["name"]) for r in rows])
                 .to_csv(index=False))
    outputs.text(OUT / "results.csv", pd.DataFrame(summary).assign(
        feature_space=[label(r["name"]) for r in summary]).to_csv(index=False))
    outputs.text(OUT / "comparisons.csv", pd.DataFrame(comparisons, columns=[
        "latent_dim", "metric", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "effect_size", "p", "p_holm",
        "p_improvement", "p_improvement_low", "p_improvement_high", "significant", "better"]).to_csv(index=False))
    outputs.figure(OUT / "latent_size.png", figure(summary, names, title))
    outputs.text(OUT / "report.md", markdown(summary, comparisons, rank, names, title, timing, failed))
    outputs.json(TIMING, timing or {})
    outputs.commit()
    print(f"sweep: {OUT / 'report.md'}")
    if failed:
        raise PipelineError(f"sweep: {len(failed)} cell(s) failed, listed in {OUT / 'report.md'}; first: seed "
                            f"{failed[0]['seed']}, latent {failed[0]['latent_dim']}: {failed[0]['error']}")


if __name__ == "__main__":
    run_stage(main, "sweep", sys.argv[1:])
