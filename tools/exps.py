"""`make exps`: every experiment, in a table a 200-column terminal can show.

    python -m tools.exps [--all]

`dvc exp show` names a metric column by its file and key
(`metrics/train_conv.json:test_mse`), so only four results fit a terminal, and it
renders the whole history (40 s on 67 commits). This prints the workspace, then
each commit that has experiments and its experiments (tools/experiments.py reads
them from their refs, whatever the history's length): the params that differ
between rows, then for each architecture its test MSE, SVM accuracy (%) and t-SNE
trustworthiness, and the baselines' accuracy. `--all` keeps every param.

A recorded value that is not a number in its metric's range is shown as `invalid`
and named, one line each, after the table.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from stages.common.errors import PipelineError, run_stage
from stages.common.evaluation.metrics import BASELINES, METRIC
from stages.common.models.catalogue import ARCH_IDS
from stages.common.outputs.read import read_json
from stages.common.settings import PARAMS_FILE, load_yaml, parse_yaml
from tools.cli import parser_for
from tools.experiments import Blobs, Experiment, flatten, git, metric_files, metric_value, read_experiments

WIDTH = 200
# A long value (a data.source path, say) would push the table past WIDTH on its own.
MAX_PARAM_CHARS = 24
COLUMNS = (("mse", "test_mse"), ("acc", "accuracy"), ("trust", "trustworthiness"))
INVALID = "invalid"


def workspace_row() -> Experiment:
    params = load_yaml(PARAMS_FILE)
    exp = Experiment("workspace", "workspace", "", params if isinstance(params, dict) else {}, {})
    for path in metric_files(ARCH_IDS):
        if Path(path).is_file():
            try:
                exp.metrics[path] = read_json(path, path)
            except PipelineError as err:
                exp.problems.append(f"workspace: {str(err).split('; rerun')[0]}")
    return exp


def commit_row(blobs: Blobs, rev: str) -> Experiment:
    exp = Experiment(rev[:7], rev, rev, {}, {})
    text = blobs.read(rev, "params.yaml")
    try:
        params = parse_yaml(text.decode("utf-8"), f"params.yaml of commit {rev[:7]}") if text else {}
        exp.params = params if isinstance(params, dict) else {}
    except (PipelineError, UnicodeDecodeError) as err:
        exp.problems.append(f"{rev[:7]}: {err}")
    for path in metric_files(ARCH_IDS):
        data = blobs.read(rev, path)
        if data is not None:
            try:
                exp.metrics[path] = json.loads(data)
            except (ValueError, RecursionError):
                exp.problems.append(f"{rev[:7]}: {path} is not valid JSON")
    return exp


def rows() -> list[tuple[str, Experiment]]:
    """(label, experiment) of the workspace, then each commit with experiments followed by its experiments."""
    found = read_experiments(list(ARCH_IDS))
    out = [("workspace", workspace_row())]
    head = git("rev-parse", "HEAD", check=False).strip()
    baselines = list(dict.fromkeys(b for b in [head, *(exp.baseline for exp in found)] if b))
    with Blobs() as blobs:
        for baseline in baselines:
            out.append((baseline[:7], commit_row(blobs, baseline)))
            out += [(f"  {exp.name}", exp) for exp in found if exp.baseline == baseline]
    return out


def _param(value) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else "…" + text[-(MAX_PARAM_CHARS - 1):]


def _cell(exp: Experiment, metric_key: str, name: str) -> str:
    metric = METRIC[metric_key]
    before = len(exp.problems)
    value = metric_value(exp, metric, name)
    if len(exp.problems) > before:
        return INVALID
    return "-" if value is None else metric.format(value)


def table(found: list[tuple[str, Experiment]], every_param: bool = False):
    import pandas as pd

    flat = [flatten(exp.params) for _, exp in found]
    keys = list(dict.fromkeys(key for params in flat for key in params))
    if not every_param:
        keys = [k for k in keys if len({json.dumps(params.get(k), default=str) for params in flat}) > 1]
    archs = [a for a in ARCH_IDS if any(f"metrics/train_{a}.json" in exp.metrics for _, exp in found)]
    records = []
    for (label, exp), params in zip(found, flat):
        record = {"experiment": label, **{key: _param(params.get(key, "-")) for key in keys}}
        for arch in archs:
            for column, key in COLUMNS:
                record[f"{arch} {column}"] = _cell(exp, key, arch)
        for name in BASELINES:
            record[f"{name} acc"] = _cell(exp, "accuracy", name)
        records.append(record)
    return pd.DataFrame(records)


def main(argv: list[str]) -> None:
    parser = parser_for("python -m tools.exps", __doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="show every param, not only those that differ")
    args = parser.parse_args(argv)
    found = rows()
    frame = table(found, args.all)
    text = frame.to_string(index=False, justify="right")
    if max(len(line) for line in text.splitlines()) > WIDTH:
        # Narrower: the trustworthiness columns go first.
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith(" trust")])
        text = frame.to_string(index=False, justify="right")
    print(text)
    problems = [line for _, exp in found for line in dict.fromkeys(exp.problems)]
    for line in problems:
        print(f"exps: {INVALID}: {line}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, "exps", sys.argv[1:])
