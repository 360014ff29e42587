"""`make sweep`: the seeds x latent-size grid as DVC experiments, then a report a reviewer can read.

    python -m tools.sweep [--jobs N] [--report-only]
    python -m tools.sweep --scheduler tls://host:8786 --git-remote NAME [--tls-ca-file CA --tls-cert CERT
                          --tls-key KEY] [--no-workers-timeout 120]

Runs every cell of sweep.seeds x sweep.latent_dims that has no finished experiment
yet, each an ordinary `dvc exp run -S seed=S -S train.latent_dim=D -S
train.threads=sweep.threads` in a temporary clone, on this machine (sweep.jobs cells
at a time) or on a Dask cluster (tools/cluster.py, tools/dispatch.py), each cell's
output in plots/sweep/logs/<cell>.log. Then it reads every cell's results and
per-image outcomes and writes plots/sweep/:
- runs.csv: every cell's results, one row per cell and feature space;
- results.csv: per latent size, feature space and metric, the mean over seeds and
  test images with its interval (both noises, or seeds only for trustworthiness);
- comparisons.csv: every pair at each latent size and metric, paired by seed and
  image, Holm-corrected within that family, with P(better) and its exact interval;
- report.md and latent_size.png; timing.json: the last run that computed cells.
The statistics are stages/common/evaluation/grid.py's; the report, grid_report.py's.

A cell is found by its params (every key of params.yaml but seed, train.latent_dim,
sweep.* and statistics.*, with train.threads = sweep.threads) and by the code it ran
(the files dvc.yaml lists as deps, and dvc.yaml): a commit that changed only results,
docs or tools loses none, and adding a seed runs only that seed's cells.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import time
from datetime import UTC
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from stages.common.evaluation.metrics import BASELINES, METRICS, feature_label
from stages.common.models.catalogue import CATALOGUE
from stages.common.outputs.atomic import OutputSet, atomic_path
from stages.common.outputs.layout import run_path
from stages.common.outputs.read import check_numbers, read_json
from stages.common.settings import PARAMS_FILE, load_yaml, read
from tools.cli import parser_for, positive_int, positive_seconds
from tools.dispatch import check_address, tls_security, usable_cores
from tools.experiments import (
    Blobs,
    OutcomeReader,
    code_paths,
    code_versions,
    fact_files,
    flatten,
    locked_outputs,
    metric_value,
    outcome_files,
    read_experiments,
    read_facts,
    read_outcome,
    workspace_commit,
)

OUT = Path("plots/sweep")
# Held by the sweep that computes cells in this clone: a second one would compute the same cells again.
SWEEP_LOCK = Path(".dvc/tmp/sweep.lock")
LOGS = OUT / "logs"
OUTPUT_FILES = ("report.md", "runs.csv", "results.csv", "comparisons.csv", "latent_sizes.csv", "latent_size.png",
                "timing.json", "params.yaml")
PARAMS = ("archs", "data.dataset", "train", "sweep", "statistics")
# A cell's stages per architecture, in order: what one part of a split cell runs for its architectures.
PER_ARCH_STAGES = ("train", "latents", "tsne", "svm")
# Feature spaces that do not change with the latent size: no latent size to choose.
FIXED_SIZE = ("pixels",)
LATENT_SIZE_COLUMNS = ["name", "metric", "latent_dim", "best_dim", "seeds", "images", "mean", "mean_diff", "ci_low",
                       "ci_high", "margin", "p_equivalence", "p_worse", "in_sequence", "equivalent", "verdict",
                       "seeds_to_decide", "smallest_sufficient"]
RESULT_COLUMNS = ["latent_dim", "name", "metric", "seeds", "images", "mean", "ci_low", "ci_high", "noise", "runs",
                  "failed", "failed_ci_low", "failed_ci_high", "unconverged", "active_units_mean", "active_units_min",
                  "active_units_max"]
# What each autoencoder's run recorded besides its metrics, to judge it before it is compared (docs/study.md):
# (the stage whose run facts, metrics/run/<stage>_<arch>.json, hold it; key; the values it may take).
RUN_RECORDS = (("train", "mean_image_mse", "a number above 0 and at most 1"),
               ("train", "loss_drop_last_fifth", "a finite number or null"),
               ("train", "steps", "a whole number of steps, at least 1"),
               ("latents", "active_units", "a whole number of units, at least 0"))
# Keys a cell's results do not depend on, left out when matching an experiment to this sweep.
NOT_CELL = ("seed", "train.latent_dim")
NOT_CELL_SECTIONS = ("sweep.", "statistics.")


# --------------------------------------------------------------------------- which cells are done
def cell_settings(params: dict, threads: int, steps: int | None) -> dict:
    """Every param a cell must share with this sweep: params.yaml but the cell's own, sweep.* and statistics.*,
    with the cell's thread count and, where sweep.steps is set, its budget in steps."""
    settings = {key: value for key, value in flatten(params).items()
                if key not in NOT_CELL and not key.startswith(NOT_CELL_SECTIONS)}
    settings["train.threads"] = threads
    if steps is not None:
        settings.update({"train.steps": steps, "train.epochs": None})
    return settings


def finished_cells(experiments: list, settings: dict, same_code) -> dict:
    """(seed, latent_dim) -> the newest experiment of that cell with these settings that ran this code."""
    cells = {}
    for exp in experiments:  # newest first
        params = exp.params
        if not isinstance(params.get("train"), dict) or "seed" not in params:
            continue
        given = flatten(params)
        if all(given.get(key) == value for key, value in settings.items()) and same_code(exp.rev):
            cells.setdefault((params["seed"], params["train"].get("latent_dim")), exp)
    return cells


def code_check(experiments: list):
    """A test of an experiment's commit: True where the pipeline's code is the workspace's (one git call)."""
    paths = code_paths(load_yaml("dvc.yaml") or {})
    here = workspace_commit()
    versions = code_versions([here, *(exp.rev for exp in experiments)], paths)
    return lambda rev: versions.get(rev) == versions[here]


def find_cells(archs: list, settings: dict) -> dict:
    experiments = read_experiments(archs)
    return finished_cells(experiments, settings, code_check(experiments))


# --------------------------------------------------------------------------- running the missing ones
@contextlib.contextmanager
def one_sweep_at_a_time(path: Path):
    """Hold this clone's sweep lock while cells are computed; PipelineError naming the holder (its PID, host and
    start) where another sweep holds it. The kernel drops the lock with its holder, killed or not."""
    import fcntl
    import socket
    from datetime import datetime

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise PipelineError(f"{path}: cannot open the sweep's lock ({err.strerror or err}); is .dvc/ writable?") \
            from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = " ".join(os.pread(fd, 300, 0).decode("utf-8", errors="replace").split()) or "a process"
            raise PipelineError(f"sweep: another sweep is already computing cells in this clone ({holder}); "
                                "wait for it or stop it, then run again (--report-only draws the report "
                                "meanwhile)") from None
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def check_out_folder(out: str) -> Path:
    """--out as a folder of the report's own: not empty, not the repository root it would litter."""
    if not out.strip():
        raise PipelineError("--out: expected a folder for the report and its tables, got an empty path")
    folder = Path(out)
    if folder.resolve() == Path.cwd().resolve():
        raise PipelineError(f"--out: {out!r} is the repository root; give a folder of the report's own, such as "
                            f"{OUT} or studies/<dataset>")
    if folder.exists() and not folder.is_dir():
        raise PipelineError(f"--out: {out!r} is a file, not a folder")
    return folder


def run_missing(todo: list, threads: int, steps: int | None, jobs: int, args, client, archs: list) -> tuple[dict, list]:
    """Run the cells `todo` here or on the cluster (`client`, None: here); (timing, failed outcomes).
    Logs in plots/sweep/logs/."""
    import tools.cells
    from tools import cluster, dispatch

    own_client = client is None
    client = client or dispatch.local_client(jobs)
    plan, failed, started = None, [], time.perf_counter()
    place = f"the Dask cluster at {args.scheduler}" if args.scheduler else "this machine"
    try:
        plan = cluster.cluster_plan(args.git_remote) if args.scheduler else cluster.local_plan()
        specs = [{**plan, "seed": seed, "latent_dim": dim, "threads": threads, "steps": steps,
                  "name": tools.cells.cell_name(seed, dim, plan["code_key"])} for seed, dim in todo]
        if not args.scheduler and not args.no_split:
            specs = split_tail(specs, jobs, archs)
            split = [s for s in specs if s.get("parts")]
            if split:
                print(f"sweep: the last round's {len(split)} cell(s) split into {len(split[0]['parts'])} parts each, "
                      f"so that no slot stands idle (--no-split: whole cells)", flush=True)
        at_a_time = "" if args.scheduler else f", {jobs} cell(s) at a time"
        print(f"sweep: {len(todo)} cell(s) to run on {place}{at_a_time}, {threads} torch thread(s) each; "
              f"logs in {LOGS}/", flush=True)
        result = dispatch.run_cells(client, specs, cell_task(), lambda outcome: say_done(outcome, failed),
                                    args.no_workers_timeout, args.connect_timeout)
        if args.scheduler:
            cluster.pull_experiments(args.git_remote, [o["name"] for o in result.outcomes if "error" not in o])
    finally:
        if plan is not None:
            cluster.remove_sweep_ref(plan, args.git_remote if args.scheduler else None)
        if own_client:
            client.close()
    how = f"{result.workers} worker(s)" if args.scheduler else f"{jobs} cell(s) at a time"
    timing = sweep_timing(result.outcomes, time.perf_counter() - started, None if args.scheduler else jobs)
    return {**timing, "cells": len(todo), "where": f"{place} ({how}), {threads} thread(s) per cell"}, failed


def cell_task():
    """The Dask task of one cell (tools.cells.run_cell), its code sent along by value.

    Workers need the environment, not the project. Dask tries plain pickle first, which
    would send a module's function by reference, so the task is a local function (plain
    pickle refuses it; cloudpickle sends it and tools.cells' code along)."""
    import cloudpickle

    import tools.cells

    cloudpickle.register_pickle_by_value(tools.cells)
    run_cell = tools.cells.run_cell

    def task(spec: dict, *parts_done) -> dict:  # parts_done: the outcomes of the cell's parts, run before it
        outcome = run_cell(spec)
        if parts_done:  # the cell's work was theirs too: the slots' time counts it
            outcome["part_seconds"] = [part.get("seconds", 0.0) for part in parts_done]
        return outcome

    return task


def say_done(outcome: dict, failed: list) -> None:
    """A finished cell: its log written, one line printed, a failure kept in `failed`."""
    log = write_log(outcome)
    cell = f"seed {outcome['seed']}, latent {outcome['latent_dim']}"
    if "error" in outcome:
        failed.append(outcome)
        print(f"sweep: cell {cell} failed on {outcome['host']}: {outcome['error']} (log: {log})", flush=True)
        return
    parts = outcome.get("part_seconds")
    after = f" (after its parts, side by side: {', '.join(f'{p:.0f}' for p in parts)} s)" if parts else ""
    print(f"sweep: cell {cell} done on {outcome['host']} in {outcome.get('seconds', 0):.0f} s{after}", flush=True)


def sweep_timing(outcomes: list[dict], wall: float, jobs: int | None) -> dict:
    """The wall time, each cell's seconds and its parts', and (here, `jobs` slots) how busy the slots were."""
    cell_seconds = [round(o.get("seconds", 0.0), 1) for o in outcomes]
    part_seconds = [round(p, 1) for o in outcomes for p in o.get("part_seconds", ())]
    timing = {"wall_seconds": round(wall, 1), "cell_seconds": cell_seconds}
    if part_seconds:
        timing["part_seconds"] = part_seconds
    if jobs:  # how much of the slots' time the cells (and their parts) kept busy
        busy = sum(cell_seconds) + sum(part_seconds)
        timing["busy_share"] = round(busy / (wall * jobs), 3) if wall > 0 else None
    return timing


def split_tail(specs: list[dict], jobs: int, archs: list) -> list[dict]:
    """The cells of the last round, where fewer cells than slots are left (5 cells on 2 slots: the fifth would
    run alone), each split into parts that run side by side: its architectures' stages shared out among the
    idle slots (the PCA baseline with the last), into this machine's shared run-cache. The cell then runs as
    any other, finds those stages done, and publishes; its results are the same, whoever computed a stage."""
    left = len(specs) % jobs
    share = jobs // left if left else 1
    if share < 2 or len(archs) < 2:
        return specs
    share = min(share, len(archs))
    out = specs[:len(specs) - left]
    for spec in specs[len(specs) - left:]:
        groups = [archs[i::share] for i in range(share)]
        parts = [{**spec, "name": f"{spec['name']}-part{i + 1}",
                  "targets": [f"{stage}@{arch}" for arch in group for stage in PER_ARCH_STAGES]
                  + (["baseline_pca"] if i == share - 1 else [])} for i, group in enumerate(groups)]
        out.append({**spec, "parts": parts})
    return out


def write_log(outcome: dict) -> Path:
    """A cell's whole output, as it came back with its outcome, in plots/sweep/logs/<cell>.log, under a first line
    with its wall seconds (what `cell_costs` sets the stages' own seconds against)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / f"{outcome['name']}.log"
    head = f"{LOG_HEAD} {outcome.get('seconds', 0.0):.1f} s on {outcome['host']}\n"
    with atomic_path(path) as temporary:
        temporary.write_text(head + (outcome.get("log") or "(no output)\n"), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- where a cell's time goes
LOG_HEAD = "# cell wall time:"
RAN = re.compile(r"^Running stage '([^']+)':", re.MULTILINE)
MAX_LOG_BYTES = 16 << 20


def stage_facts_key(stage: str) -> str | None:
    """The run-facts file (kind_name) of a dvc.yaml stage: train@conv -> train_conv, baseline_pca -> svm_pca."""
    if "@" in stage:
        kind, name = stage.split("@", 1)
        return f"{kind}_{name}"
    return f"svm_{stage.removeprefix('baseline_')}" if stage.startswith("baseline_") else None


def cell_cost(facts: dict, log_path: Path) -> dict | None:
    """Where one computed cell's time went: each stage that ran in it (its log says which) with its process's own
    seconds (`facts`: kind_name -> run facts), an SVM's fit and predict apart, and the rest of the cell's wall time
    (clone, DVC, git, the stages without facts: download, prepare, report) as overhead. None without its log."""
    try:
        if not log_path.is_file() or log_path.stat().st_size > MAX_LOG_BYTES:
            return None
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    head = text.split("\n", 1)[0]
    wall = None
    if head.startswith(LOG_HEAD):
        try:
            wall = float(head.removeprefix(LOG_HEAD).split()[0])
        except (ValueError, IndexError):
            wall = None
    parts = {}
    for stage in RAN.findall(text):
        record = facts.get(stage_facts_key(stage) or "")
        seconds = record.get("process_seconds") if record else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e7:
            continue
        kind = stage.split("@")[0]
        if kind in ("svm", "baseline_pca", "baseline_pixels"):
            fit, predict = record.get("fit_seconds"), record.get("predict_seconds")
            if all(isinstance(v, (int, float)) and 0 <= v <= seconds for v in (fit, predict)):
                parts[f"{stage} fit"], parts[f"{stage} predict"] = fit, predict
                seconds -= fit + predict
            parts[f"{stage} rest"] = seconds
        elif kind == "train" and isinstance(record.get("seconds"), (int, float)) and \
                0 <= record["seconds"] <= seconds:
            parts[f"{stage} steps"] = record["seconds"]
            parts[f"{stage} rest"] = seconds - record["seconds"]
        else:
            parts[stage] = seconds
    if not parts:
        return None
    if wall is not None:
        parts["overhead"] = max(0.0, wall - sum(parts.values()))
    return {"wall_seconds": wall, "parts": parts}


def cost_summary(costs: list[dict]) -> dict | None:
    """The median over computed cells of each part's seconds, and of their wall time."""
    import statistics

    if not costs:
        return None
    names = sorted({name for cost in costs for name in cost["parts"]})
    walls = [c["wall_seconds"] for c in costs if c["wall_seconds"] is not None]
    return {"cells": len(costs), "median_wall_seconds": round(statistics.median(walls), 1) if walls else None,
            "median_seconds": {name: round(statistics.median([c["parts"].get(name, 0.0) for c in costs]), 1)
                               for name in names}}


# --------------------------------------------------------------------------- reading the results
def cell_rows(cells: dict, archs: list, excluded: list, costs: list | None = None) -> list[dict]:
    """One row per cell and feature space, with its metrics and per-image outcomes; cells whose recorded results
    cannot be used are left out, each with one line in `excluded`. Each computed cell's `cell_cost` goes to
    `costs`."""
    reader, rows = None, []
    with Blobs() as blobs:
        wanted = {}
        for exp in cells.values():
            try:
                lock = locked_outputs(blobs, exp)
            except PipelineError as err:
                exp.problems.append(str(err))
                continue
            wanted.update({(exp.name, *key): md5 for key, md5 in outcome_files(exp, lock, archs).items()})
    if wanted:
        reader = OutcomeReader()
    try:
        files = reader.paths(wanted) if reader else {}
        test_labels = None
        for (seed, dim), exp in sorted(cells.items(), key=lambda item: (item[0][1], item[0][0])):
            try:
                found, test_labels = _rows_of(exp, seed, dim, archs, files, test_labels)
            except PipelineError as err:
                excluded.append(str(err))
                continue
            if exp.problems:
                excluded.extend(exp.problems)
                continue
            rows += found
            if costs is not None:
                cost = cell_cost(_all_facts(exp, archs, files), LOGS / f"{exp.name}.log")
                if cost:
                    costs.append(cost)
    finally:
        if reader:
            reader.close()
    return rows


def _all_facts(exp, archs: list, files: dict) -> dict:
    """kind_name -> run facts of every stage of the cell whose file the cache holds and reads cleanly."""
    found = {}
    for kind, name in fact_files(archs):
        path = files.get((exp.name, "facts", f"{kind}_{name}"))
        if path is None:
            continue
        try:
            found[f"{kind}_{name}"] = read_facts(path, f"{kind}@{name}", exp)
        except PipelineError:
            continue  # a cost figure the less; the results' own checks are _rows_of's
    return found


def _rows_of(exp, seed: int, dim: int, archs: list, files: dict, test_labels):
    rows = []
    for name in [*archs, *BASELINES]:
        row = {"seed": seed, "latent_dim": dim, "name": name, "experiment": exp.name, "per_image": {}}
        for metric in METRICS:
            row[metric.key] = metric_value(exp, metric, name)
        if name in archs:
            facts = {stage: read_facts(files[(exp.name, "facts", f"{stage}_{name}")], f"{stage}@{name}", exp)
                     for stage in ("train", "latents") if (exp.name, "facts", f"{stage}_{name}") in files}
            row.update(run_records(exp, name, facts))
        for kind in ("correct", "errors"):
            path = files.get((exp.name, kind, name))
            if path is None:
                continue
            outcomes = read_outcome(kind, name, path, exp)
            labels = outcomes.pop("y_test", None)
            if labels is not None:
                if test_labels is not None and (len(labels) != len(test_labels) or (labels != test_labels).any()):
                    raise PipelineError(f"{exp.name}: scored on other test images than the grid's other cells "
                                        "(its data.* params differ?)")
                test_labels = labels
            row["per_image"].update(outcomes)
        if any(row[m.key] is not None for m in METRICS):
            rows.append(row)
    return rows, test_labels


def _record_ok(key: str, value) -> bool:
    import math

    if value is None:
        return key == "loss_drop_last_fifth"  # too few steps for two fifths
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    if key == "mean_image_mse":
        return 0 < value <= 1
    if key in ("steps", "active_units"):
        return float(value).is_integer() and value >= (1 if key == "steps" else 0)
    return True


def run_records(exp, arch: str, facts: dict) -> dict:
    """RUN_RECORDS of one architecture's run in an experiment (`facts`: stage -> its run facts, where the cell has
    them), each checked: a run without them (older code) has None, a value out of range is one line in
    exp.problems."""
    found = {}
    for stage, key, expected in RUN_RECORDS:
        record, path = facts.get(stage), str(run_path(stage, arch))
        value = None if record is None else record.get(key)
        if record is not None and key in record and not _record_ok(key, value):
            exp.problems.append(f"{exp.name}: {path} has {key} = {str(value)[:40]}; expected {expected}")
            value = None
        found[key] = value
    return found


def last_timing(out: Path) -> dict | None:
    """The wall time the last sweep that ran cells recorded, if <out>/timing.json holds one."""
    path = out / "timing.json"
    if not path.is_file():
        return None
    timing = read_json(path, "sweep")
    if not isinstance(timing.get("where"), str) or not timing.get("cells"):
        return None
    check_numbers(timing, path, "sweep", ("wall_seconds", "cells"))
    timing.pop("cell_cost", None)  # redrawn from the logs and the run facts each time, never read back
    return timing


def whole_numbers(frame, columns: tuple):
    """Columns of whole numbers that some rows lack (a baseline has no steps) written as 4, not 4.0."""
    return frame.astype({c: "Int64" for c in columns if c in frame.columns})


def budget(train, sweep) -> str:
    """Each cell's training budget in words: "2,345 steps each" or "5 epochs each"."""
    steps = sweep.steps if sweep.steps is not None else train.steps
    if steps is not None:
        return f"{steps:,} optimizer steps each"
    return f"{train.epochs} epoch{'s' if train.epochs != 1 else ''} each"


def equivalence_margins(statistics) -> dict:
    """statistics.margin_*, per metric, as the latent-size comparison takes them."""
    from stages.common.evaluation.grid import Margin

    return {"accuracy": Margin(statistics.margin_accuracy_points / 100, relative=False),
            "test_mse": Margin(statistics.margin_mse_percent / 100, relative=True),
            "denoise_mse": Margin(statistics.margin_mse_percent / 100, relative=True),
            "trustworthiness": Margin(statistics.margin_trustworthiness, relative=False)}


# --------------------------------------------------------------------------- the report
def write_report(rows: list, params: dict, timing: dict | None, excluded: list, failed: list, out: Path,
                 command: str) -> None:
    import pandas as pd

    from stages.common.evaluation import grid, grid_report

    statistics = params["statistics"]
    outputs = OutputSet([out / name for name in OUTPUT_FILES])
    # Judged before anything is compared: a failed run is counted apart and kept out of every mean and test.
    judged = grid.judge_runs(rows, statistics.failure_mse_fraction, statistics.convergence_drop_percent / 100)
    trained = [r for r in judged if not r["failed"]]
    counts = grid.run_counts(judged, statistics.confidence)
    summary = grid.aggregate(trained, statistics.confidence)
    comparisons = grid.compare(trained, statistics.confidence, statistics.alpha)
    sizes = grid.latent_sizes([r for r in trained if r["name"] not in FIXED_SIZE], statistics.alpha,
                              equivalence_margins(statistics), statistics.power)
    rank = grid.ranks(trained, comparisons)
    names = list(dict.fromkeys(r["name"] for r in rows))
    title = f"Seeds x latent-size sweep on {params['data.dataset']}: {len({r['seed'] for r in rows})} seed(s), " \
            + budget(params["train"], params["sweep"])
    plain = [{k: v for k, v in r.items() if k != "per_image"} for r in judged]
    outputs.text(out / "runs.csv", whole_numbers(pd.DataFrame(plain), ("steps", "active_units")).assign(
        feature_space=[feature_label(r["name"]) for r in plain]).to_csv(index=False))
    by_cell = {(c["latent_dim"], c["name"]): c for c in counts}
    results = [{**r, **{k: v for k, v in by_cell.get((r["latent_dim"], r["name"]), {}).items()
                        if k not in ("latent_dim", "name")}} for r in summary]
    # A set-up whose every run failed has no mean to give, and its failures are still a result: a row without
    # a metric.
    with_mean = {(r["latent_dim"], r["name"]) for r in summary}
    results += [c for c in counts if (c["latent_dim"], c["name"]) not in with_mean]
    outputs.text(out / "results.csv", whole_numbers(pd.DataFrame(results, columns=RESULT_COLUMNS), (
        "seeds", "images", "runs", "failed", "unconverged", "active_units_min", "active_units_max")).assign(
        feature_space=[feature_label(r["name"]) for r in results]).to_csv(index=False))
    outputs.text(out / "comparisons.csv", pd.DataFrame(comparisons).to_csv(index=False))
    outputs.text(out / "latent_sizes.csv", pd.DataFrame(sizes, columns=LATENT_SIZE_COLUMNS).to_csv(index=False))
    outputs.figure(out / "latent_size.png", grid_report.figure(summary, names, title, judged))
    outputs.text(out / "report.md", grid_report.markdown(
        summary, comparisons, rank, names, title, timing, statistics, excluded, failed, sizes, command, counts))
    outputs.json(out / "timing.json", timing or {})
    outputs.text(out / "params.yaml", PARAMS_FILE.read_text(encoding="utf-8"))
    outputs.commit()


def main(argv: list[str]) -> None:
    parser = parser_for("python -m tools.sweep", __doc__.splitlines()[0])
    parser.add_argument("--jobs", type=positive_int("--jobs", 64), help="cells at a time here (default: sweep.jobs)")
    parser.add_argument("--report-only", action="store_true", help="only redraw the report from the experiments")
    parser.add_argument("--no-split", action="store_true",
                        help="never split the last round's cells among idle slots (see split_tail)")
    parser.add_argument("--out", default=str(OUT), help=f"folder of the report and its tables (default {OUT}; "
                                                        "a study's: studies/<dataset>)")
    parser.add_argument("--scheduler", default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
                        help="run the cells on this Dask scheduler (default: $DASK_SCHEDULER_ADDRESS; none: here)")
    parser.add_argument("--git-remote", help="with --scheduler: the git remote (its name in `git remote -v`) the "
                                             "workers clone from and the cells publish to; no default")
    parser.add_argument("--tls-ca-file", help="with a tls:// scheduler: the CA certificate (PEM; default: dask "
                                              "config distributed.comm.tls.ca-file)")
    parser.add_argument("--tls-cert", help="the client certificate (PEM; default: distributed.comm.tls.client.cert)")
    parser.add_argument("--tls-key", help="its key (PEM; default: distributed.comm.tls.client.key)")
    parser.add_argument("--allow-plain-tcp", action="store_true",
                        help="accept an unencrypted tcp:// scheduler beyond this machine (anyone who reaches it "
                             "runs code as you)")
    parser.add_argument("--no-workers-timeout", type=positive_seconds("--no-workers-timeout"), default=120,
                        help="end the sweep after this many seconds without a Dask worker (default 120)")
    parser.add_argument("--connect-timeout", type=positive_seconds("--connect-timeout", 600), default=10,
                        help="seconds to reach the Dask scheduler, and to wait for it if it goes (default 10)")
    args = parser.parse_args(argv)
    check_out_folder(args.out)  # before anything runs, not after hours of cells
    security = None
    if args.scheduler:  # a junk address, missing credentials or remote are found before anything is read or run
        check_address(args.scheduler, args.allow_plain_tcp)
        security = tls_security(args.scheduler, args.tls_ca_file, args.tls_cert, args.tls_key)
        if not args.git_remote:
            raise PipelineError("--scheduler needs --git-remote NAME: the git remote the cells are pushed to (a "
                                "fork or a bare repository you own; never a default such as the upstream origin)")
    elif args.git_remote or args.tls_ca_file or args.tls_cert or args.tls_key or args.allow_plain_tcp:
        raise PipelineError("--git-remote, --tls-* and --allow-plain-tcp go with --scheduler; a sweep here pushes "
                            "nothing and listens on loopback only")
    client = None
    try:
        if args.scheduler and not args.report_only:
            from tools import dispatch

            client = dispatch.connect(args.scheduler, args.connect_timeout, security)
        sweep_with(args, client, shlex.join(["python", "-m", "tools.sweep", *argv]))
    finally:
        if client is not None:
            client.close()


def sweep_with(args, client, command: str) -> None:
    params = read(PARAMS, catalogue=CATALOGUE)
    sweep, archs = params["sweep"], params["archs"]
    jobs = args.jobs or sweep.jobs or max(1, usable_cores() // sweep.threads)
    cells = [(seed, dim) for dim in sweep.latent_dims for seed in sweep.seeds]
    settings = cell_settings(load_yaml(PARAMS_FILE), sweep.threads, sweep.steps)

    found = find_cells(archs, settings)
    todo = [cell for cell in cells if cell not in found]
    print(f"sweep: {len(cells)} cells (seeds x latent sizes); {len(cells) - len(todo)} finished, {len(todo)} to run",
          flush=True)
    timing, failed = None, []
    if todo and not args.report_only:
        with one_sweep_at_a_time(SWEEP_LOCK):
            timing, failed = run_missing(todo, sweep.threads, sweep.steps, jobs, args, client, archs)
        found = find_cells(archs, settings)
    elif not todo:
        print("sweep: nothing to run; redrawing the report", flush=True)
    excluded, costs = [], []
    rows = cell_rows({cell: found[cell] for cell in cells if cell in found}, archs, excluded, costs)
    if not rows:
        if failed:
            first = failed[0]
            raise PipelineError(f"sweep: every cell failed; first: seed {first['seed']}, latent {first['latent_dim']}: "
                                f"{first['error']} (log: {LOGS}/{first['name']}.log)")
        raise PipelineError("no finished sweep experiment found; run `make sweep` first"
                            + (f" ({len(excluded)} excluded: {excluded[0]})" if excluded else ""))
    out = Path(args.out)  # checked by main before anything ran
    timing = timing or last_timing(out)
    summary = cost_summary(costs)
    if summary:
        timing = {**(timing or {}), "cell_cost": summary}
    write_report(rows, params, timing, excluded, failed, out, command)
    print(f"sweep: {out / 'report.md'}", flush=True)
    if excluded:
        print(f"sweep: {len(excluded)} problem(s) with recorded results, those cells left out: {excluded[0]}",
              file=sys.stderr, flush=True)
    if failed or excluded:
        first = failed[0] if failed else None
        raise PipelineError(f"sweep: {len(failed)} cell(s) failed, {len(excluded)} excluded, listed in "
                            f"{out / 'report.md'}" + (f"; first: seed {first['seed']}, latent {first['latent_dim']}: "
                                                       f"{first['error']}" if first else ""))


if __name__ == "__main__":
    run_stage(main, "sweep", sys.argv[1:])
