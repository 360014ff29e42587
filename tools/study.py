"""The latent-size study's results in the README, written from the study's committed tables only.

    python -m tools.study            # rewrite the README's study section from studies/*/
    python -m tools.study --check    # exit 1 if the README's section and the tables differ (a test runs it)

Each folder `studies/<dataset>/` holds what one `make sweep` wrote (`--out studies/<dataset>`):
results.csv, comparisons.csv, latent_sizes.csv, report.md, latent_size.png and the
params.yaml it ran with. The README's section between the two markers is made here
from those files and nothing else, so every number in it is one in a committed CSV,
and `--check` keeps the two one fact.
"""
from __future__ import annotations

import io
import math
import re
import sys
from itertools import groupby
from pathlib import Path

from stages.common.data.datasets import PIXELS
from stages.common.errors import PipelineError, run_stage
from stages.common.evaluation.grid import VERDICTS
from stages.common.evaluation.grid_report import SIZE_CAVEATS, sufficient_rows
from stages.common.evaluation.metrics import BASELINES, METRIC, METRICS, feature_label, in_range
from stages.common.evaluation.tables import table
from stages.common.models.catalogue import CATALOGUE
from stages.common.outputs.atomic import atomic_path
from tools.cli import parser_for

STUDIES = Path("studies")
README = Path("README.md")
BEGIN = "<!-- study results: made by python -m tools.study from studies/*/; do not edit by hand -->"
END = "<!-- end of study results -->"
TABLES = ("results.csv", "comparisons.csv", "latent_sizes.csv")
# Besides the tables, what every study folder holds and the README links to.
FILES = ("latent_size.png", "report.md", "params.yaml")
# The columns read here, of each table.
COLUMNS = {"results.csv": ("latent_dim", "name", "metric", "seeds", "images", "mean", "ci_low", "ci_high"),
           "comparisons.csv": ("latent_dim", "metric", "a", "b", "mean_diff", "significant", "better"),
           "latent_sizes.csv": ("name", "metric", "latent_dim", "best_dim", "smallest_sufficient")}
# Columns a newer sweep writes, read where present.
OPTIONAL = {"results.csv": ("runs", "failed"), "latent_sizes.csv": ("verdict", "seeds_to_decide")}
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A study's tables are kilobytes to a few megabytes (30 cells: 300 kB); past this one is not a sweep's.
MAX_TABLE_BYTES = 16 << 20


def _refuse(path: Path, column: str, row: int, value, expected: str) -> PipelineError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return PipelineError(f"{path}: column {column}, row {row}: {shown}; expected {expected}")


def _whole(value, low: int, high: int | None = None) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and float(value).is_integer() and value >= low and (high is None or value <= high))


def _number_in(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value <= high


def _check_row(path: Path, row: dict, number: int) -> None:
    """Every value of one row as the sweep writes it: known names and metrics, whole counts, finite values in
    their metric's range; one line naming the file, the column and the row where not."""
    names = {*CATALOGUE, *BASELINES}
    metric = METRIC.get(row.get("metric")) if row.get("metric") is not None else None
    checks = {"latent_dim": (lambda v: _whole(v, 1, PIXELS), f"a whole latent size from 1 to {PIXELS}"),
              "best_dim": (lambda v: _whole(v, 1, PIXELS), f"a whole latent size from 1 to {PIXELS}"),
              "smallest_sufficient": (lambda v: _whole(v, 1, PIXELS), f"a whole latent size from 1 to {PIXELS}"),
              "name": (lambda v: v in names, "a feature space: " + ", ".join(sorted(names))),
              "a": (lambda v: v in names, "a feature space: " + ", ".join(sorted(names))),
              "b": (lambda v: v in names, "a feature space: " + ", ".join(sorted(names))),
              "metric": (lambda v: v in METRIC or (v is None and "runs" in row), "one of " + ", ".join(METRIC)),
              "seeds": (lambda v: _whole(v, 1), "a whole number of seeds, at least 1"),
              "images": (lambda v: _whole(v, 0), "a whole number of test images"),
              "runs": (lambda v: v is None or _whole(v, 1), "a whole number of runs, at least 1"),
              "failed": (lambda v: v is None or (_whole(v, 0) and v <= (row.get("runs") or 0)),
                         "a whole number of failed runs, at most the runs"),
              "significant": (lambda v: isinstance(v, bool), "True or False"),
              "better": (lambda v: v is None or v in (row.get("a"), row.get("b")), "empty, or the pair's a or b"),
              "verdict": (lambda v: v is None or v in VERDICTS, "empty or one of " + ", ".join(VERDICTS)),
              "seeds_to_decide": (lambda v: v is None or _whole(v, 2), "empty or a whole number of seeds")}
    if metric is not None:
        low, high = metric.bounds
        within = f"a number from {low:g} to {high:g} ({metric.label})"
        checks["mean"] = (lambda v: in_range(metric, v), within)
        for column in ("ci_low", "ci_high"):
            checks[column] = (lambda v: v is None or in_range(metric, v), within)
        reach = high - low
        checks["mean_diff"] = (lambda v: _number_in(v, -reach, reach), f"a difference from {-reach:g} to {reach:g}")
    for column, (ok, expected) in checks.items():
        if column in row and not ok(row[column]):
            raise _refuse(path, column, number, row[column], expected)
    if metric is not None and row.get("ci_low") is not None and row.get("ci_high") is not None \
            and "mean" in row and not row["ci_low"] <= row["mean"] <= row["ci_high"]:
        raise _refuse(path, "mean", number, row["mean"], f"a mean inside its interval [{row['ci_low']}, "
                                                          f"{row['ci_high']}]")


def _read_table(path: Path):
    """A study table: a regular, readable file of at most MAX_TABLE_BYTES, parsed by pandas."""
    import pandas as pd

    if not path.exists():
        raise PipelineError(f"{path}: missing; a study folder holds what make sweep --out wrote")
    if not path.is_file():
        raise PipelineError(f"{path}: not a regular file; a study folder holds what make sweep --out wrote")
    if path.stat().st_size > MAX_TABLE_BYTES:
        raise PipelineError(f"{path}: {path.stat().st_size:,} bytes, far more than a sweep writes "
                            f"(at most {MAX_TABLE_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text; not a table the sweep writes") from None
    except OSError as err:
        raise PipelineError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        return pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as err:
        raise PipelineError(f"{path}: not a table the sweep writes ({' '.join(str(err).split())[:120]})") \
            from None


def read_study(folder: Path) -> dict:
    import pandas as pd

    if not SAFE_NAME.fullmatch(folder.name):
        raise PipelineError(f"{folder.parent}/{folder.name!r}: a study folder's name is letters, digits, '.', '_' "
                            "and '-' (it is printed in the README as a heading and in links)")
    missing = [name for name in TABLES if not (folder / name).exists()]
    if missing:
        raise PipelineError(f"{folder}: no {', '.join(missing)}; a study folder holds what make sweep --out wrote")
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise PipelineError(f"{path}: {'not a regular file' if path.exists() else 'missing'}; a study folder "
                                "holds what make sweep --out wrote, the figure and report the README links to")
    found = {}
    for name in TABLES:
        path = folder / name
        frame = _read_table(path)
        if name == "results.csv" and "metric" in frame.columns and "runs" in frame.columns:
            frame = frame[frame["metric"].notna()]  # a row without a metric holds only a set-up's failure count
        absent = [c for c in COLUMNS[name] if c not in frame.columns]
        if absent or not len(frame):
            raise PipelineError(f"{path}: expected the sweep's columns {', '.join(COLUMNS[name])}, with rows; "
                                + (f"missing {', '.join(absent)}" if absent else "no rows"))
        keep = [c for c in (*COLUMNS[name], *OPTIONAL.get(name, ())) if c in frame.columns]
        rows = frame[keep].astype(object).where(pd.notna(frame[keep]), None).to_dict("records")
        for number, row in enumerate(rows, start=2):  # the header is row 1
            _check_row(path, row, number)
        found[name.removesuffix(".csv")] = rows
    return found


def _interval(metric, low, high) -> str:
    return "" if low is None else f" [{metric.format(low)}, {metric.format(high)}]"


def _signed(metric, value) -> str:
    return f"{metric.shown(value):+.{metric.decimals}f}"


def sufficient_table(sizes: list[dict], names: list) -> str:
    return table(["feature space", *(m.label for m in METRICS)], sufficient_rows(sizes, names))


def steady_and_flipping(comparisons: list[dict], metric, dims: list) -> tuple[list[str], list[str]]:
    """Pairs one of which is significantly better at every latent size; pairs whose order flips between sizes."""
    pairs: dict = {}
    for c in comparisons:
        if c["metric"] == metric.key:
            pairs.setdefault((c["a"], c["b"]), {})[c["latent_dim"]] = c
    steady, flips = [], []
    for (a, b), by_dim in pairs.items():
        if sorted(by_dim) != dims:
            continue
        winners = {dim: c["better"] for dim, c in by_dim.items() if c["significant"]}
        if len(winners) == len(dims) and len(set(winners.values())) == 1:
            winner = winners[dims[0]]
            loser = b if winner == a else a
            sign = 1 if winner == a else -1
            spread = [sign * by_dim[d]["mean_diff"] for d in dims]
            steady.append(f"{feature_label(winner)} better than {feature_label(loser)} at every size "
                          f"(by {_signed(metric, min(spread))} to {_signed(metric, max(spread))})")
        elif len(set(winners.values())) > 1:
            order = ", then ".join(f"{feature_label(w)} at {_sizes(run, dims)}" for w, run in _runs(winners, dims))
            apart = [d for d in dims if d not in winners]
            flips.append(f"{feature_label(a)} against {feature_label(b)}: better is {order}"
                         + (f" (not separated at {_sizes(apart, dims)})" if apart else ""))
    return steady, flips


def _runs(winners: dict, dims: list) -> list[tuple[str, list]]:
    """The winner at each separated size, consecutive sizes with one winner taken together."""
    return [(winner, list(run)) for winner, run in groupby(dims, key=winners.get) if winner is not None]


def _sizes(some: list, dims: list) -> str:
    """'16 to 128' for three or more neighbouring sizes of the grid, else each named."""
    start = dims.index(some[0])
    if len(some) > 2 and dims[start:start + len(some)] == some:
        return f"{some[0]} to {some[-1]}"
    return ", ".join(map(str, some[:-1])) + (" and " if len(some) > 1 else "") + str(some[-1])


def decisions(sizes: list[dict]) -> str | None:
    """How many sizes below each best the study decided, and what would decide the rest (a newer sweep's
    latent_sizes.csv says; an older one's has no verdicts)."""
    judged = [r for r in sizes if r.get("verdict") not in (None, "best", "larger")]
    if not judged:
        return None
    count = {v: sum(r["verdict"] == v for r in judged) for v in ("sufficient", "worse", "not reached", "undecided")}
    planned = sorted(int(r["seeds_to_decide"]) for r in judged
                     if r["verdict"] == "undecided" and r.get("seeds_to_decide") is not None)
    line = (f"- Decided: {count['sufficient']} sizes sufficient and {count['worse']} worse beyond the margin, of "
            f"{len(judged)} sizes below a best; {count['undecided']} undecided, {count['not reached']} not reached "
            f"by the step-down.")
    if count["undecided"]:
        line += (f" Seeds that would decide an undecided one with power 0.8: {_spread(planned)}"
                 + (f"; {count['undecided'] - len(planned)} not within 100 seeds" if len(planned) <
                    count["undecided"] else "") + ".")
    return line


def _spread(values: list[int]) -> str:
    if not values:
        return "none within 100 seeds"
    middle = values[len(values) // 2]
    return f"{values[0]} to {values[-1]} (median {middle})" if len(values) > 1 else str(values[0])


def failures(results: list[dict]) -> str | None:
    """The set-ups some of whose runs failed, from results.csv's counts (a newer sweep's)."""
    seen, found = set(), []
    for r in results:
        key = (r["name"], r["latent_dim"])
        if r.get("failed") and key not in seen:
            seen.add(key)
            found.append(f"{feature_label(r['name'])} at {r['latent_dim']}: {int(r['failed'])} of {int(r['runs'])}")
    if not any(r.get("runs") is not None for r in results):
        return None
    return "- Runs that failed (no better than the mean image; counted apart): " + ("; ".join(found) or "none") + "."


def section(folder: Path) -> list[str]:
    study = read_study(folder)
    results, comparisons, sizes = study["results"], study["comparisons"], study["latent_sizes"]
    dims = sorted({r["latent_dim"] for r in results})
    names = list(dict.fromkeys(r["name"] for r in results))
    seeds = max(r["seeds"] for r in results)
    images = max(r["images"] for r in results)
    accuracy = METRIC["accuracy"]
    steady, flips = steady_and_flipping(comparisons, accuracy, dims)
    lines = [f"### {folder.name}: {seeds} seeds, {images:,} test images, latent sizes "
             f"{', '.join(map(str, dims))}", "",
             f"![{folder.name}: each metric against latent size, with interval bands]({folder / 'latent_size.png'})",
             "", "Smallest sufficient latent size, and the best size:", "", sufficient_table(sizes, names), ""]
    lines += [line for line in (decisions(sizes), failures(results)) if line]
    lines += [f"- {accuracy.label}, holds at every size: " + ("; ".join(steady) if steady else
                                                               "no pair is separated at every size") + ".",
              f"- {accuracy.label}, changes with the size:"
              + ("".join(f"\n  - {flip}." for flip in flips) if flips else " no ranking flips."),
              "", f"Means with their intervals, every comparison, the runs and the command: "
                  f"[{folder}/report.md]({folder / 'report.md'}).", ""]
    return lines


def render(studies: Path) -> str:
    folders = sorted(p for p in studies.iterdir() if p.is_dir()) if studies.is_dir() else []
    if not folders:
        raise PipelineError(f"{studies}/: no study folder; run make sweep with --out {studies}/<dataset> first")
    return "\n".join([BEGIN, "", SIZE_CAVEATS, "", *(line for folder in folders for line in section(folder)), END])


def replace_section(readme: str, new: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise PipelineError(f"{README}: expected the study section's two markers once each, in order")
    return readme[:readme.index(BEGIN)] + new + readme[readme.index(END) + len(END):]


def main(argv: list[str]) -> None:
    parser = parser_for("python -m tools.study", __doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where the README differs")
    args = parser.parse_args(argv)
    readme = README.read_text(encoding="utf-8")
    updated = replace_section(readme, render(STUDIES))
    if args.check:
        if updated != readme:
            raise PipelineError(f"{README}: its study section differs from {STUDIES}/*/; run python -m tools.study")
        print(f"study: {README} agrees with {STUDIES}/")
        return
    with atomic_path(README) as temporary:
        temporary.write_text(updated, encoding="utf-8")
    print(f"study: {README} rewritten from {STUDIES}/")


if __name__ == "__main__":
    run_stage(main, "study", sys.argv[1:])
