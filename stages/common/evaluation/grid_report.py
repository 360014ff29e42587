"""The sweep's report: plots/sweep/report.md and latent_size.png, from the grid's analysis (grid.py).

Every figure states what its interval counts: seeds and test images for the metrics
with a per-image form, seeds only for t-SNE trustworthiness. Ranks come in groups; a
group is "not separated with S seeds and N test images", and a pair inside a group
whose own interval excludes zero is named as such (Holm's correction, not the data,
is what keeps it in the group). Tables go through the single-run report's renderer.
"""
from __future__ import annotations

from stages.common.evaluation.grid import MAX_PLANNED_SEEDS
from stages.common.evaluation.metrics import BASELINES, METRIC, METRICS, feature_label
from stages.common.evaluation.tables import escape, table


def method(confidence: float, alpha: float) -> str:
    return (
        f"Each cell: the mean over the seeds and the test images, with its {confidence:.0%} interval, and the "
        f"rank. Every seed is scored on the same test images, so an interval over seeds alone would leave out the "
        f"test set's own noise: the intervals of test MSE, denoise MSE and SVM accuracy count both noises (a "
        f"crossed seeds x images random-effects variance; the interval is the generalized pivot of Weerahandi "
        f"(1993), the seed term's chi-square with S - 1 degrees of freedom integrated exactly; bounded through the "
        f"logit or the log), those of t-SNE trustworthiness (one number per embedding) count the seeds only. "
        f"Every pair of feature spaces at one latent size and one metric is one Holm family (baselines "
        f"included), compared paired by seed and by test image; significance level {alpha} after Holm's "
        f"correction. A rank is 1 + "
        f"the number of feature spaces significantly better; those sharing a rank are not separated. "
        f"comparisons.csv holds every pair: the difference, its interval, the seeds' share of its variance, "
        f"p before and after Holm, and the wins: the share of seeds on which one beats the other on these "
        f"test images, an estimate of P(better on a new seed) with its exact (Clopper-Pearson) interval, ties "
        f"counting half.")


def _cell(record: dict | None, rank: int | None) -> str:
    if record is None:
        return "–"
    metric = METRIC[record["metric"]]
    interval = ("" if record["ci_low"] is None
                else f" [{metric.format(record['ci_low'])}, {metric.format(record['ci_high'])}]")
    return f"{metric.format(record['mean'])}{interval} (rank {rank})"


def metric_table(summary: list[dict], rank: dict, names: list, metric, dims: list) -> str:
    rows = []
    for name in names:
        records = {r["latent_dim"]: r for r in summary if r["name"] == name and r["metric"] == metric.key}
        if records:
            rows.append([feature_label(name), *(_cell(records.get(d), rank.get((d, metric.key), {}).get(name))
                                                for d in dims)])
    return table(["feature space", *(f"latent {d}" for d in dims)], rows)


def groups(rank: dict, comparisons: list[dict], metric, dims: list, seeds: int, images: int) -> list[str]:
    """The sentences of ranks shared, with the pairs in them whose own interval excludes zero."""
    lines = []
    noise = f"{seeds} seeds and {images:,} test images" if metric.per_image else f"{seeds} seeds"
    for dim in dims:
        shared = {}
        for name, value in rank.get((dim, metric.key), {}).items():
            shared.setdefault(value, []).append(name)
        for members in (m for m in shared.values() if len(m) > 1):
            line = (f"- latent {dim}: not separated with {noise} (Holm): "
                    + ", ".join(feature_label(n) for n in members) + ".")
            inside = [c for c in comparisons if c["latent_dim"] == dim and c["metric"] == metric.key
                      and c["a"] in members and c["b"] in members and c["ci_low"] is not None
                      and (c["ci_low"] > 0 or c["ci_high"] < 0)]
            for c in inside:
                line += (f" {feature_label(c['a'])} against {feature_label(c['b'])}: its own interval excludes "
                         f"zero (p {c['p']:.3g} before Holm, {c['p_holm']:.3g} after).")
            lines.append(line)
    return lines


def significant_table(comparisons: list[dict], metric) -> list[str]:
    found = [c for c in comparisons if c["metric"] == metric.key and c["significant"]]
    lines = [f"Significant differences ({len(found)} of {sum(c['metric'] == metric.key for c in comparisons)} "
             "pairs):", ""]
    if not found:
        return [*lines, "None: no difference is larger than the noise counted.", ""]
    rows = []
    for c in found:
        winner, loser = c["better"], c["b"] if c["better"] == c["a"] else c["a"]
        sign = 1 if winner == c["a"] else -1
        low, high = sorted(metric.shown(sign * v) for v in (c["ci_low"], c["ci_high"]))
        wins = c["wins"] if winner == c["a"] else c["seeds"] - c["wins"] - c["ties"]
        share = c["p_better"] if winner == c["a"] else 1 - c["p_better"]
        band = ((c["p_better_low"], c["p_better_high"]) if winner == c["a"]
                else (1 - c["p_better_high"], 1 - c["p_better_low"]))
        spec = f".{metric.decimals}f"
        rows.append([c["latent_dim"], feature_label(winner), feature_label(loser),
                     f"{abs(metric.shown(c['mean_diff'])):{spec}} [{low:{spec}}, {high:{spec}}]",
                     f"{c['p_holm']:.3g}", f"{wins} of {c['seeds']} ({share:.2f} [{band[0]:.2f}, {band[1]:.2f}])"])
    header = ["latent", "better", "than", "difference [interval]", "p (Holm)", "seeds won (P(better) [exact])"]
    return [*lines, table(header, rows), ""]


def _difference(metric, value: float | None) -> str:
    return "–" if value is None else f"{metric.shown(value):+.{metric.decimals}f}"


def _margin(metric, record: dict) -> str:
    return f"±{metric.shown(record['margin']):.{metric.decimals}f}"


SIZE_CAVEATS = (
    "Reading it: the best size is itself an estimate, and where no smaller size is shown equivalent "
    "the answer is the best size, which says only that the data do not license a smaller one. t-SNE "
    "trustworthiness compares each map with its own latent space, not with the images: a 2-D space, "
    "which t-SNE hardly has to change, keeps its neighbours best, so its sizes say how faithfully "
    "t-SNE draws a space, not what the space is worth.")


def sufficient_cell(record: dict, largest: int) -> str:
    """The smallest sufficient size, said so that the best size alone is not read as a smaller one shown, and
    so that a best at the largest size tried is read as "perhaps more would do better"."""
    best, smallest = record["best_dim"], record["smallest_sufficient"]
    edge = ", the largest tried" if best == largest else ""
    return f"{best} (best{edge}; none smaller ≡)" if smallest == best else f"{smallest} (best {best}{edge})"


def sufficient_rows(sizes: list[dict], names: list) -> list[list[str]]:
    """One row per feature space: its smallest sufficient size for each metric ('–' where not measured)."""
    rows = []
    for name in names:
        cells = []
        for metric in METRICS:
            found = [r for r in sizes if r["name"] == name and r["metric"] == metric.key]
            cells.append(sufficient_cell(found[0], max(r["latent_dim"] for r in found)) if found else "–")
        if any(cell != "–" for cell in cells):
            rows.append([feature_label(name), *cells])
    return rows


def cost_table(cost: dict | None) -> list[str]:
    """Where a computed cell's time went: each part's median seconds over the cells, its share of the median
    wall time, largest first."""
    if not cost or not cost.get("median_seconds"):
        return []
    wall = cost.get("median_wall_seconds")
    parts = sorted(cost["median_seconds"].items(), key=lambda item: -item[1])
    rows = [[escape(name), f"{seconds:,.1f}", f"{seconds / wall:.0%}" if wall else "–"] for name, seconds in parts]
    return ["## Where a cell's time goes", "",
            f"Median over the {cost['cells']} cell(s) these logs and run facts cover"
            + (f" (a cell's median wall time: {wall:,.0f} s)" if wall else "") + ": each stage that ran in a cell, "
            "its process's own seconds (metrics/run/), a training stage's optimizer steps and an SVM's fit and "
            "predict apart; overhead is the rest of the cell's wall time (the clone, DVC and git, and the "
            "download, prepare and report stages, which record no facts). A stage restored from the run-cache "
            "costs its cell nothing and is not counted.", "",
            table(["part", "seconds", "share of a cell"], rows), ""]


def verdict_mark(record: dict) -> str:
    """≡ sufficient, ✗ worse, (≡) equivalent but not reached, ? undecided with the seeds that would decide it."""
    verdict = record.get("verdict")
    if verdict == "undecided":
        need = record.get("seeds_to_decide")
        return f"? (> {MAX_PLANNED_SEEDS} seeds)" if need is None else f"? ({need} seeds)"
    return {"sufficient": "≡", "worse": "✗", "not reached": "(≡)"}.get(verdict, "")


def _active(count: dict | None, dim: int) -> str:
    if not count or count["active_units_mean"] is None:
        return "–"
    return f"{count['active_units_mean']:.1f} ({count['active_units_min']}–{count['active_units_max']}) of {dim}"


def run_tables(counts: list[dict], names: list, dims: list, statistics) -> list[str]:
    """The runs that failed and those that had not converged, per feature space and size; the active units."""
    if not counts:
        return []
    found = {(c["name"], c["latent_dim"]): c for c in counts}
    lines = ["## Runs that did not train, and runs still learning", "",
             f"Judged before any comparison (docs/study.md). A run **failed** when its test MSE is no better than "
             f"{statistics.failure_mse_fraction:g} × that of predicting every pixel's training-set mean "
             f"(statistics.failure_mse_fraction), or its loss was not finite (the cell then stops with its error, "
             f"listed above); a failed run is kept in runs.csv and the figure, and left out of every mean, "
             f"interval and test below. A run **had not converged** when its training loss still fell by more "
             f"than {statistics.convergence_drop_percent:g}% over the last fifth of its steps against the fifth "
             f"before (statistics.convergence_drop_percent): it is counted in, and flagged, since its "
             f"architecture might do better with more steps. Each cell: failed of runs [exact "
             f"{statistics.confidence:.0%} interval of the chance a run fails]; not converged.", ""]
    rows = []
    for name in names:
        cells = []
        for dim in dims:
            c = found.get((name, dim))
            cells.append("–" if c is None else
                         f"{c['failed']} of {c['runs']} [{c['failed_ci_low']:.2f}, {c['failed_ci_high']:.2f}]; "
                         f"{c['unconverged']} not converged")
        if any(cell != "–" for cell in cells):
            rows.append([feature_label(name), *cells])
    lines += [table(["feature space", *(f"latent {d}" for d in dims)], rows), ""]
    active = [c for c in counts if c["active_units_mean"] is not None]
    if active:
        rows = []
        for name in names:
            cells = [found.get((name, dim)) for dim in dims]
            if any(c and c["active_units_mean"] is not None for c in cells):
                rows.append([feature_label(name), *(_active(c, dim) for c, dim in zip(cells, dims))])
        lines += ["Active units: latent dimensions whose code varies across the test images by a variance above "
                  "0.01 (for the VAE, of its posterior means: Burda et al. 2016), mean over the runs that did not "
                  "fail (min–max). A VAE whose units go inactive as its size grows is not using the extra room.", "",
                  table(["feature space", *(f"latent {d}" for d in dims)], rows), ""]
    return lines


def size_tables(sizes: list[dict], names: list, seeds: int, images: int, alpha: float) -> list[str]:
    """Which latent size each feature space needs: per metric, every size against that space's best."""
    if not sizes:
        return []
    lines = ["## Which latent size each feature space needs", "",
             f"Each latent size against the same feature space's best size (best mean), paired by seed and by "
             f"test image, over the runs that did not fail. A size **suffices** when the difference is within the "
             f"metric's margin (statistics.margin_*): two one-sided tests at {alpha}, so its whole "
             f"{1 - 2 * alpha:.0%} interval inside the margin, taken as a step-down: the sizes below the best, "
             f"largest first, each at the full {alpha}, stopping at the first not shown (a fixed sequence, Hsu & "
             f"Berger 1999: the order is set by the sizes before any result is seen, so no correction is owed). "
             f"\"Not separated\" from the best is not \"sufficient\": a wide interval is neither. Each cell: the "
             f"difference from the best (negative: worse) [{1 - 2 * alpha:.0%} interval]; ≡ sufficient; ✗ worse "
             f"than the best by more than the margin (one-sided at {alpha}); ? undecided, with the seeds that would "
             f"decide it with power statistics.power if the difference is what was observed (\"> N\": not even "
             f"that many); (≡) equivalent on its own but after a larger size the step-down could not show; best "
             f"marks the best size. {seeds} seeds, {images:,} test images.", ""]
    lines += [table(["feature space", *(f"{m.label}: smallest sufficient size" for m in METRICS)],
                    sufficient_rows(sizes, names)), "", SIZE_CAVEATS, ""]
    for metric in METRICS:
        found = [r for r in sizes if r["metric"] == metric.key]
        if not found:
            continue
        dims = sorted({r["latent_dim"] for r in found})
        rows = []
        for name in names:
            records = {r["latent_dim"]: r for r in found if r["name"] == name}
            if not records:
                continue
            cells = []
            for dim in dims:
                r = records.get(dim)
                if r is None:
                    cells.append("–")
                elif dim == r["best_dim"]:
                    cells.append("best")
                else:
                    interval = ("" if r["ci_low"] is None else
                                f" [{_difference(metric, r['ci_low'])}, {_difference(metric, r['ci_high'])}]")
                    cells.append(f"{_difference(metric, r['mean_diff'])}{interval} {verdict_mark(r)}".rstrip())
            first = next(iter(records.values()))
            rows.append([feature_label(name), _margin(metric, first), *cells])
        lines += [f"### {metric.label}: each size against the best", "",
                  table(["feature space", "margin", *(f"latent {d}" for d in dims)], rows), ""]
    return lines


def markdown(summary: list[dict], comparisons: list[dict], rank: dict, names: list, title: str,
             timing: dict | None, statistics, excluded: list[str] | None = None,
             failed: list[dict] | None = None, sizes: list[dict] | None = None, command: str = "",
             counts: list[dict] | None = None) -> str:
    confidence, alpha = statistics.confidence, statistics.alpha
    dims = sorted({r["latent_dim"] for r in summary})
    seeds = max((r["seeds"] for r in summary), default=0)
    images = max((r["images"] for r in summary), default=0)
    lines = [f"# {escape(title)}", "", "![results against latent size](latent_size.png)", ""]
    if timing and "where" in timing:
        seconds = [v for v in timing.get("cell_seconds") or [] if isinstance(v, (int, float))]
        parts = [v for v in timing.get("part_seconds") or [] if isinstance(v, (int, float))]
        busy = timing.get("busy_share")
        lines += [f"Wall time of the sweep run that computed {timing['cells']} of these cells: "
                  f"{timing['wall_seconds']:.0f} s on {escape(timing['where'])}"
                  + (f"; each cell {min(seconds):.0f}-{max(seconds):.0f} s, {sum(seconds):.0f} s in all" if seconds
                     else "")
                  + (f", and {sum(parts):.0f} s in the {len(parts)} parts its last round was split into" if parts
                     else "")
                  + (f"; the cells kept the slots busy {busy:.0%} of that time" if isinstance(busy, float) else "")
                  + ".", ""]
    lines += cost_table((timing or {}).get("cell_cost"))
    if failed:
        lines += ["## Failed cells", "",
                  table(["seed", "latent size", "error", "log"],
                        [[f["seed"], f["latent_dim"], escape(f["error"]), f"logs/{f['name']}.log"] for f in failed]),
                  ""]
    if excluded:
        lines += ["## Excluded cells", "", "Their recorded results could not be used:", "",
                  *(f"- {escape(line)}" for line in excluded), ""]
    lines += run_tables(counts or [], names, dims, statistics)
    lines += [method(confidence, alpha), ""]
    for metric in METRICS:
        present = [n for n in names if any(r["name"] == n and r["metric"] == metric.key for r in summary)]
        if not present:
            continue
        noise = "seeds and test images" if metric.per_image else "seeds only"
        lines += [f"## {metric.label} ({'higher' if metric.higher_is_better else 'lower'} is better; "
                  f"intervals over {noise})", "", metric_table(summary, rank, present, metric, dims), ""]
        lines += groups(rank, comparisons, metric, dims, seeds, images)
        lines += ["", *significant_table(comparisons, metric)]
    lines += size_tables(sizes or [], names, seeds, images, alpha)
    if command:
        lines += ["## How this was made", "", f"`{escape(command)}`, with the params in params.yaml beside this "
                  "report (each cell: those, its seed and latent size).", ""]
    return "\n".join(lines)


def figure(summary: list[dict], names: list, title: str, runs: list[dict] | None = None):
    """Each metric against latent size: a line through the means and a band for each interval; the baselines
    dashed (raw pixels, which has no latent size, one band across); every run a point, a failed one a red x."""
    from stages.common.outputs.charts import plt, series_colour

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5.2 * len(METRICS), 4.6))
    dims = sorted({r["latent_dim"] for r in summary})
    baseline_style = {"pixels": ("#7f7f7f", "s"), "pca": ("#303030", "D")}
    for ax, metric in zip(axes, METRICS):
        for i, name in enumerate(names):
            points = sorted((r for r in summary if r["name"] == name and r["metric"] == metric.key),
                            key=lambda r: r["latent_dim"])
            if not points:
                continue
            x = [r["latent_dim"] for r in points]
            y = [metric.shown(r["mean"]) for r in points]
            low = [metric.shown(r["ci_low"]) if r["ci_low"] is not None else v for v, r in zip(y, points)]
            high = [metric.shown(r["ci_high"]) if r["ci_high"] is not None else v for v, r in zip(y, points)]
            if len(x) == 1:  # one latent size only: the band runs across the axis
                x, y, low, high = [dims[0], dims[-1]], y * 2, low * 2, high * 2
            colour, marker = baseline_style.get(name, (series_colour(i), "o"))
            dashed = name in BASELINES
            ax.plot(x, y, marker=None if name == "pixels" else marker, markersize=4, label=feature_label(name),
                    color=colour, linestyle="--" if dashed else "-", linewidth=1.4)
            ax.fill_between(x, low, high, color=colour, alpha=0.10 if dashed else 0.18, linewidth=0)
            _run_points(ax, [r for r in runs or () if r["name"] == name and name not in BASELINES], metric, colour)
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        if metric.scale == "log":
            ax.set_yscale("log")
        ax.set_xlabel("latent size")
        ax.set_title(f"{metric.label}, {'higher' if metric.higher_is_better else 'lower'} is better\n"
                     f"(bands: intervals over {'seeds and test images' if metric.per_image else 'seeds only'})",
                     fontsize=10)
        ax.grid(alpha=0.3)
    if any(r.get("failed") for r in runs or ()):
        axes[0].scatter([], [], marker="x", color="#d62728", label="failed run (not in the means)")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # every series, also those a metric lacks (the baselines have no MSE)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _run_points(ax, runs: list[dict], metric, colour: str) -> None:
    """Each run's own value, a small dot beside its size's mean; a failed run a red x (left out of the means)."""
    for failed in (False, True):
        points = [(r["latent_dim"], metric.shown(r[metric.key])) for r in runs
                  if bool(r.get("failed")) == failed and r.get(metric.key) is not None]
        if points:
            x, y = zip(*points)
            ax.scatter(x, y, s=14 if failed else 6, marker="x" if failed else "o", linewidths=1,
                       color="#d62728" if failed else colour, alpha=0.9 if failed else 0.45, zorder=3)
