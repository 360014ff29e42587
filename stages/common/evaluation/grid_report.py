"""The sweep's report: plots/sweep/report.md and latent_size.png, from the grid's analysis (grid.py).

Every figure states what its interval counts: seeds and test images for the metrics
with a per-image form, seeds only for t-SNE trustworthiness. Ranks come in groups; a
group is "not separated with S seeds and N test images", and a pair inside a group
whose own interval excludes zero is named as such (Holm's correction, not the data,
is what keeps it in the group). Tables go through the single-run report's renderer.
"""
from __future__ import annotations

from stages.common.evaluation.grid import SEED_DF_QUANTILE
from stages.common.evaluation.metrics import BASELINES, METRIC, METRICS, feature_label
from stages.common.evaluation.tables import escape, table


def method(confidence: float, alpha: float) -> str:
    return (
        f"Each cell: the mean over the seeds and the test images, with its {confidence:.0%} interval, and the "
        f"rank. Every seed is scored on the same test images, so an interval over seeds alone would leave out the "
        f"test set's own noise: the intervals of test MSE, denoise MSE and SVM accuracy count both noises (a "
        f"crossed seeds x images random-effects variance, Student's t with Satterthwaite's degrees of freedom, "
        f"the seed term taken at its {SEED_DF_QUANTILE:.0%} chi-square bound; bounded through the logit or the "
        f"log), those of t-SNE trustworthiness (one number per embedding) count the seeds only. Every pair of "
        f"feature spaces at one latent size and one metric is one Holm family (baselines included), compared "
        f"paired by seed and by test image; significance level {alpha} after Holm's correction. A rank is 1 + "
        f"the number of feature spaces significantly better; those sharing a rank are not separated. "
        f"comparisons.csv holds every pair: the difference, its interval, its degrees of freedom, p before and "
        f"after Holm, and the wins: the share of seeds on which one beats the other on these test images, an "
        f"estimate of P(better on a new seed) with its exact (Clopper-Pearson) interval, ties counting half.")


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


def markdown(summary: list[dict], comparisons: list[dict], rank: dict, names: list, title: str,
             timing: dict | None, confidence: float, alpha: float, excluded: list[str] | None = None,
             failed: list[dict] | None = None) -> str:
    dims = sorted({r["latent_dim"] for r in summary})
    seeds = max((r["seeds"] for r in summary), default=0)
    images = max((r["images"] for r in summary), default=0)
    lines = [f"# {escape(title)}", "", "![results against latent size](latent_size.png)", ""]
    if timing:
        lines += [f"Wall time of the sweep run that computed {timing['cells']} of these cells: "
                  f"{timing['wall_seconds']:.0f} s on {escape(timing['where'])}.", ""]
    if failed:
        lines += ["## Failed cells", "",
                  table(["seed", "latent size", "error", "log"],
                        [[f["seed"], f["latent_dim"], escape(f["error"]), f"logs/{f['name']}.log"] for f in failed]),
                  ""]
    if excluded:
        lines += ["## Excluded cells", "", "Their recorded results could not be used:", "",
                  *(f"- {escape(line)}" for line in excluded), ""]
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
    return "\n".join(lines)


def figure(summary: list[dict], names: list, title: str):
    from stages.common.outputs.charts import plt, series_colour

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4.3))
    dims = sorted({r["latent_dim"] for r in summary})
    baseline_style = {"pixels": ("#7f7f7f", "s"), "pca": ("#303030", "D")}
    for ax, metric in zip(axes, METRICS):
        for i, name in enumerate(names):
            points = [r for r in summary if r["name"] == name and r["metric"] == metric.key]
            if not points:
                continue
            # Each series a little to the side of the true latent size, so intervals do not hide each other.
            dodge = 2 ** (0.08 * (i - (len(names) - 1) / 2))
            x = [r["latent_dim"] * dodge for r in points]
            y = [metric.shown(r["mean"]) for r in points]
            low = [y_i - metric.shown(r["ci_low"]) if r["ci_low"] is not None else 0 for y_i, r in zip(y, points)]
            high = [metric.shown(r["ci_high"]) - y_i if r["ci_high"] is not None else 0 for y_i, r in zip(y, points)]
            colour, marker = baseline_style.get(name, (series_colour(i), "o"))
            ax.errorbar(x, y, yerr=[low, high], marker=marker, capsize=3, label=feature_label(name), color=colour,
                        linestyle="--" if name in BASELINES else "-")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        if metric.scale == "log":
            ax.set_yscale("log")
        ax.set_xlabel("latent size (series spread sideways to stay readable)")
        ax.set_title(f"{metric.label} ({'seeds and images' if metric.per_image else 'seeds only'})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
