"""`make facts`: what the last run cost and on what it ran, from metrics/run/ (not DVC metrics).

    python -m tools.facts [KIND ...]     KIND: train, latents, tsne, svm (default: all)

Prints one table per kind, a row per architecture (or baseline), a column per fact:
times, peak memory, sizes, parameter counts, device.
"""
from __future__ import annotations

import sys

from stages.common.errors import PipelineError, run_stage
from stages.common.outputs.layout import RUN_DIR
from stages.common.outputs.read import read_json

KINDS = ("train", "latents", "tsne", "svm")


def main(argv: list[str]) -> None:
    import pandas as pd

    kinds = argv or list(KINDS)
    if any(kind.startswith("-") for kind in kinds):
        raise PipelineError(f"python -m tools.facts takes kinds ({', '.join(KINDS)}), no options; got {kinds}")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise PipelineError(f"unknown kind {unknown[0]!r}; expected some of {', '.join(KINDS)}")
    files = sorted(RUN_DIR.glob("*.json"))
    if not files:
        raise PipelineError(f"{RUN_DIR}: no run facts yet; run the pipeline first (make repro)")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    for kind in kinds:
        table = {}
        for path in files:
            if path.stem.startswith(f"{kind}_"):
                try:  # written by a stage, or restored from the run-cache or a remote: checked as input
                    table[path.stem[len(kind) + 1:]] = read_json(path, path.stem)
                except PipelineError as err:
                    table[path.stem[len(kind) + 1:]] = {"error": str(err).split("; rerun")[0]}
        if table:
            print(f"== {kind} ({RUN_DIR}/{kind}_*.json)")
            # Each value as written: a DataFrame column with a gap would show counts as floats (64.0).
            frame = pd.DataFrame(list(table.values()), index=list(table), dtype=object).fillna("")
            print(frame.to_string())
            print()
    sys.stdout.flush()


if __name__ == "__main__":
    run_stage(main, "facts", sys.argv[1:])
