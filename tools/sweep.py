"""`make sweep`: one DVC experiment per latent size, then a report of results against latent size.

    python -m tools.sweep [--jobs N] [--report-only]

Queues `dvc exp run --queue -S train.latent_dim=D` for each D in sweep.latent_dims
(each worker's torch threads set to its share of the cores), runs the queue with
sweep.jobs workers (`dvc exp run --run-all --jobs`), then reads `dvc exp show --json`
and writes plots/sweep/report.md, plots/sweep/results.csv and plots/sweep/latent_size.png
(test MSE, SVM accuracy and t-SNE trustworthiness against latent size, a line per
architecture). A latent size that already has a successful experiment on the current
commit with the same settings is not queued again, so a repeated sweep only
redraws the report; changed code reruns what changed and DVC's run-cache restores the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from stages.common.models.catalogue import CATALOGUE, display_name
from stages.common.models.device import usable_cores
from stages.common.outputs.atomic import OutputSet
from stages.common.settings import read
from tools.exps import dvc, experiments

OUT = Path("plots/sweep")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
ATTEMPTS = 2
RESULTS = {  # column -> (metrics file pattern, key)
    "test_mse": ("metrics/train_{}.json", "test_mse"),
    "accuracy": ("metrics/svm_{}.json", "accuracy"),
    "trustworthiness": ("metrics/tsne_{}.json", "trustworthiness"),
}


def missing(dims: list, settings: dict) -> list:
    """The latent sizes of `dims` with no finished experiment of these settings on the current commit."""
    done = {exp["params"]["train"]["latent_dim"] for exp in experiments(json.loads(dvc("exp", "show", "--json")))
            if "train" in exp["params"] and matches(exp["params"], settings)}
    return [dim for dim in dims if dim not in done]


def rows(found: list[dict], archs: list, settings: dict) -> list[dict]:
    """One row per latent size and architecture (plus the PCA baseline), newest experiment per size."""
    by_dim = {}
    for exp in found:
        params = exp["params"]
        if not matches(params, settings):
            continue
        by_dim.setdefault(params["train"]["latent_dim"], exp)  # exp show lists newest first
    table = []
    for dim, exp in sorted(by_dim.items()):
        for arch in archs:
            row = {"latent_dim": dim, "architecture": display_name(arch), "experiment": exp["name"]}
            for column, (pattern, key) in RESULTS.items():
                row[column] = exp["metrics"].get(pattern.format(arch), {}).get(key)
            table.append(row)
        pca = exp["metrics"].get("metrics/svm_pca.json", {}).get("accuracy")
        if pca is not None:
            table.append({"latent_dim": dim, "architecture": "PCA (baseline)", "experiment": exp["name"],
                          "test_mse": None, "accuracy": pca, "trustworthiness": None})
    return table


def matches(params: dict, settings: dict) -> bool:
    """Whether an experiment's params.yaml has `settings` (dotted key -> value) besides its latent size."""
    for key, value in settings.items():
        node = params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != value:
            return False
    return True


def figure(table: list[dict], title: str):
    from stages.common.outputs.charts import plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    names = list(dict.fromkeys(row["architecture"] for row in table))
    for ax, (column, label, log) in zip(axes, (("test_mse", "test MSE per pixel", True),
                                              ("accuracy", "SVM test accuracy", False),
                                              ("trustworthiness", "t-SNE trustworthiness (k=5)", False))):
        for i, name in enumerate(names):
            points = [(r["latent_dim"], r[column]) for r in table
                      if r["architecture"] == name and r[column] is not None]
            if not points:
                continue
            x, y = zip(*points)
            baseline = name.endswith("(baseline)")
            ax.plot(x, y, marker="o", label=name, color="grey" if baseline else plt.get_cmap("tab10")(i % 10),
                    linestyle="--" if baseline else "-")
        ax.set_xscale("log", base=2)
        dims = sorted({r["latent_dim"] for r in table})
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("latent size")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def markdown(table: list[dict], title: str, wall_seconds: float | None) -> str:
    dims = sorted({r["latent_dim"] for r in table})
    names = list(dict.fromkeys(r["architecture"] for r in table))
    lines = [f"# {title}", "", "![results against latent size](latent_size.png)", ""]
    if wall_seconds is not None:
        lines += [f"Wall time of this sweep: {wall_seconds:.0f} s.", ""]
    for column, label, spec in (("test_mse", "Test MSE", ".6f"), ("accuracy", "SVM test accuracy %", ".2f"),
                                ("trustworthiness", "t-SNE trustworthiness", ".4f")):
        lines += [f"## {label}", "", "| architecture | " + " | ".join(map(str, dims)) + " |",
                  "|---|" + "---|" * len(dims)]
        for name in names:
            cells = []
            for dim in dims:
                value = next((r[column] for r in table if r["architecture"] == name and r["latent_dim"] == dim), None)
                if value is not None and column == "accuracy":
                    value *= 100
                cells.append("–" if value is None else format(value, spec))
            if any(cell != "–" for cell in cells):
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="parallel workers (default: sweep.jobs)")
    parser.add_argument("--report-only", action="store_true", help="only redraw the report from dvc exp show")
    args = parser.parse_args(argv)
    params = read(("archs", "data.dataset", "train.epochs", "sweep"), catalogue=CATALOGUE)
    jobs = args.jobs or params["sweep"].jobs
    if jobs < 1:
        raise PipelineError(f"--jobs is {jobs}; expected a positive integer")
    threads = max(1, usable_cores() // jobs)
    dims = params["sweep"].latent_dims
    # What every experiment of this sweep shares; an old experiment with other values is not reused.
    settings = {"train.threads": threads, "data.dataset": params["data.dataset"],
                "train.epochs": params["train.epochs"]}
    outputs = OutputSet([OUT / "report.md", OUT / "results.csv", OUT / "latent_size.png"])

    wall = None
    if not args.report_only:
        todo = missing(dims, settings)
        print(f"sweep: latent sizes {dims}; {len(todo)} to run with {jobs} worker(s) of {threads} thread(s) each"
              + (f"; already done: {sorted(set(dims) - set(todo))}" if len(todo) < len(dims) else ""), flush=True)
        started, queued = time.perf_counter(), bool(todo)
        # OpenMP and BLAS pools (t-SNE, scikit-learn, oneDAL) get the same share as torch:
        # oversubscribed OpenMP threads spin-wait and ran t-SNE many times slower.
        share = {name: str(threads) for name in THREAD_VARIABLES}
        for attempt in range(1, ATTEMPTS + 1):
            if not todo:
                break
            for dim in todo:
                dvc("exp", "run", "--queue", "-S", f"train.latent_dim={dim}", "-S", f"train.threads={threads}")
            dvc("exp", "run", "--run-all", "--jobs", str(jobs), capture=False, env={**os.environ, **share})
            todo = missing(dims, settings)
            if todo and attempt < ATTEMPTS:
                # Two workers finishing at once can lose one experiment's ref (DVC 3.67);
                # queued again, its stages come straight from the run-cache.
                print(f"sweep: no experiment recorded for latent sizes {todo}; queueing them again", flush=True)
        if todo:
            raise PipelineError(f"sweep: no finished experiment for latent sizes {todo}; see `dvc queue logs`")
        if queued:
            wall = time.perf_counter() - started
            print(f"sweep: experiments finished in {wall:.0f} s", flush=True)
        else:
            print("sweep: nothing to run; redrawing the report", flush=True)

    archs = params["archs"]
    table = [row for row in rows(experiments(json.loads(dvc("exp", "show", "--json"))), archs, settings)
             if row["latent_dim"] in dims]
    if not table:
        raise PipelineError("no finished sweep experiment found in `dvc exp show`; run `make sweep` first")
    title = (f"Latent-size sweep on {params['data.dataset']} ({params['train.epochs']} epochs, "
             f"{jobs} worker(s) x {threads} thread(s))")
    import pandas as pd

    outputs.text(OUT / "results.csv", pd.DataFrame(table).to_csv(index=False))
    outputs.figure(OUT / "latent_size.png", figure(table, title))
    outputs.text(OUT / "report.md", markdown(table, title, wall))
    outputs.commit()
    print(f"sweep: {OUT / 'report.md'}")


if __name__ == "__main__":
    run_stage(main, "sweep", sys.argv[1:])
