"""`make exps`: the experiments of `dvc exp show`, narrowed to what a 200-column terminal can show.

    python -m tools.exps [--all]

`dvc exp show` names a metric column by its file and key
(`metrics/train_conv.json:test_mse`), so only four results fit a terminal. This
prints one row per experiment (and the workspace and its commit): the params that
differ between them, then for each architecture its test MSE, SVM accuracy (%) and
t-SNE trustworthiness, and the baselines' accuracy. `--all` keeps every param.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from stages.common.errors import PipelineError, run_stage
from stages.common.models.catalogue import ARCH_IDS

WIDTH = 200


def dvc(*args: str, capture: bool = True, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=capture, text=True, env=env)
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or "").split())[-400:] if capture else "see the output above"
        raise PipelineError(f"dvc {' '.join(args)} failed: {detail}")
    return proc.stdout if capture else ""


def experiments(show: list) -> list[dict]:
    """Flatten `dvc exp show --json` (of one or every commit): one dict per finished experiment."""
    found = []
    for commit in show:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            if state in ("queued", "running", "failed"):
                continue
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                if data.get("status", "Success") != "Success" or rev.get("error"):
                    continue
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = {path: (value or {}).get("data") or {} for path, value in (data.get("metrics") or {}).items()}
                found.append({"name": rev.get("name") or exp.get("name"), "rev": rev.get("rev"),
                              "baseline": commit.get("rev"), "params": params, "metrics": metrics})
    return found


def flatten(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix[:-1]: json.dumps(node) if isinstance(node, (list, dict)) else node}
    flat = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def rows_of(show: list) -> list[dict]:
    """One row per commit and experiment: name, params and metrics of `dvc exp show --json`."""
    rows = []
    for index, commit in enumerate(show):
        found = experiments([commit])
        if index > 1 and not found:
            continue  # an older commit without experiments (exp show --all-commits lists them all)
        data = commit.get("data") or {}
        name = "workspace" if commit.get("rev") == "workspace" else (commit.get("name") or commit.get("rev", "")[:7])
        rows.append({"name": name, "params": flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data")
                                                     or {}),
                     "metrics": {path: (v or {}).get("data") or {} for path, v in (data.get("metrics") or {}).items()}})
        for exp in found:
            rows.append({"name": f"  {exp['name']}", "params": flatten(exp["params"]), "metrics": exp["metrics"]})
    return rows


def table(rows: list[dict], every_param: bool = False):
    import pandas as pd

    keys = list(dict.fromkeys(key for row in rows for key in row["params"]))
    if not every_param:
        keys = [k for k in keys if len({json.dumps(row["params"].get(k)) for row in rows}) > 1]
    archs = [a for a in ARCH_IDS if any(f"metrics/train_{a}.json" in row["metrics"] for row in rows)]
    records = []
    for row in rows:
        record = {"experiment": row["name"], **{key: _param(row["params"].get(key, "-")) for key in keys}}
        m = row["metrics"]
        for arch in archs:
            record[f"{arch} mse"] = _fmt(m.get(f"metrics/train_{arch}.json", {}).get("test_mse"), ".5f")
            record[f"{arch} acc"] = _fmt(_pct(m.get(f"metrics/svm_{arch}.json", {}).get("accuracy")), ".2f")
            record[f"{arch} trust"] = _fmt(m.get(f"metrics/tsne_{arch}.json", {}).get("trustworthiness"), ".4f")
        for name in ("pixels", "pca"):
            record[f"{name} acc"] = _fmt(_pct(m.get(f"metrics/svm_{name}.json", {}).get("accuracy")), ".2f")
        records.append(record)
    return pd.DataFrame(records)


# A long value (a data.source path, say) would push the table past WIDTH on its own.
MAX_PARAM_CHARS = 24


def _param(value) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else "…" + text[-(MAX_PARAM_CHARS - 1):]


def _pct(value):
    return None if value is None else value * 100


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.exps", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="show every param, not only those that differ")
    args = parser.parse_args(argv)
    # Every commit's experiments: a sweep's cells hang off the commit before its results were committed.
    frame = table(rows_of(json.loads(dvc("exp", "show", "--json", "--all-commits"))), args.all)
    text = frame.to_string(index=False, justify="right")
    if max(len(line) for line in text.splitlines()) > WIDTH:
        # Narrower: the trustworthiness columns go first.
        frame = frame.drop(columns=[c for c in frame.columns if c.endswith(" trust")])
        text = frame.to_string(index=False, justify="right")
    print(text)


if __name__ == "__main__":
    run_stage(main, "exps", sys.argv[1:])
