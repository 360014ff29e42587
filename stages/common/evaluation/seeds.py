"""Results over seeds: per-cell rows of a seeds x latent-size grid, aggregated and compared.

A row is one grid cell's result for one feature space: `seed`, `latent_dim`, `name`
(an architecture id, or `pixels` / `pca` for the baselines), and the metrics it has.
`aggregate` gives each metric's mean and Student-t interval over seeds; `compare`
tests every pair at each latent size and metric, paired by seed, Holm-corrected
within that family; `ranks` groups them (rank = 1 + how many are significantly
better). Pure functions over plain dicts, so the sweep tool, the report and the
tests share them.
"""
from __future__ import annotations

from itertools import combinations

from stages.common.evaluation.statistics import compare_paired, grouped_ranks, holm, summarise

ALPHA = 0.05
# metric -> (label, higher is better, shown as percent)
METRICS = {
    "test_mse": ("test MSE", False, False),
    "denoise_mse": ("denoise MSE", False, False),
    "accuracy": ("SVM accuracy %", True, True),
    "trustworthiness": ("t-SNE trustworthiness", True, False),
}
BASELINE_NAMES = {"pixels": "raw pixels (baseline)", "pca": "PCA (baseline)"}


def _values(rows: list[dict], latent_dim: int, name: str, metric: str) -> dict:
    """seed -> value of `metric` for `name` at `latent_dim`."""
    return {r["seed"]: r[metric] for r in rows
            if r["latent_dim"] == latent_dim and r["name"] == name and r.get(metric) is not None}


def _names(rows: list[dict]) -> list:
    return list(dict.fromkeys(r["name"] for r in rows))


def _dims(rows: list[dict]) -> list:
    return sorted({r["latent_dim"] for r in rows})


def aggregate(rows: list[dict]) -> list[dict]:
    """One record per latent size, feature space and metric: n, mean, std, 95% interval over seeds."""
    out = []
    for dim in _dims(rows):
        for name in _names(rows):
            for metric in METRICS:
                values = _values(rows, dim, name, metric)
                if not values:
                    continue
                summary = summarise([values[s] for s in sorted(values)])
                out.append({"latent_dim": dim, "name": name, "metric": metric, "n": summary.n,
                            "mean": summary.mean, "std": summary.std, "ci_low": summary.ci_low,
                            "ci_high": summary.ci_high})
    return out


def compare(rows: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Every pair at each latent size and metric, on the seeds both have, Holm-corrected within the family."""
    out = []
    for dim in _dims(rows):
        for metric, (_, higher, _) in METRICS.items():
            family = []
            for a, b in combinations(_names(rows), 2):
                va, vb = _values(rows, dim, a, metric), _values(rows, dim, b, metric)
                seeds = sorted(set(va) & set(vb))
                if len(seeds) < 2:
                    continue
                result = compare_paired([va[s] for s in seeds], [vb[s] for s in seeds], higher, seed=len(out))
                family.append((a, b, result))
            adjusted = holm([r.p_value for _, _, r in family]) if family else []
            for (a, b, r), p_holm in zip(family, adjusted):
                significant = p_holm < alpha
                out.append({"latent_dim": dim, "metric": metric, "a": a, "b": b, "n": r.n,
                            "mean_diff": r.mean_diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
                            "effect_size": r.effect_size, "p": r.p_value, "p_holm": p_holm,
                            "p_improvement": r.p_improvement, "p_improvement_low": r.p_improvement_low,
                            "p_improvement_high": r.p_improvement_high, "significant": significant,
                            "better": (a if r.mean_diff > 0 else b) if significant else None})
    return out


def ranks(rows: list[dict], comparisons: list[dict]) -> dict:
    """(latent_dim, metric) -> name -> grouped rank, from the significant comparisons."""
    out = {}
    for dim in _dims(rows):
        for metric in METRICS:
            names = [n for n in _names(rows) if _values(rows, dim, n, metric)]
            if not names:
                continue
            better = {(c["better"], c["b"] if c["better"] == c["a"] else c["a"]) for c in comparisons
                      if c["latent_dim"] == dim and c["metric"] == metric and c["significant"]}
            out[(dim, metric)] = grouped_ranks(names, better)
    return out
