"""Results of a seeds x latent-size grid, with intervals and tests that count both noises: seeds and test images.

Every seed of a grid is scored on the same fixed test set, so the spread over seeds
holds none of the test images' noise: a seed-only interval says how a number would
move with a new seed on *these* images, not whether it would hold on new ones. Each
mean and each difference here is treated as a crossed two-way random-effects design
(Clark 1973's "language-as-fixed-effect fallacy"; the variance decomposition of
statistics.md): an outcome y[s, i] of seed s on test image i is

    y[s, i] = mu + a[s] + b[i] + e[s, i]      (seed effect, image effect, interaction),

so the grand mean over S seeds and N images has variance
var(a)/S + var(b)/N + var(e)/(S N). From the two-way ANOVA mean squares it is
estimated as MS_seed / (S N) + max(0, MS_image - MS_residual) / (S N): the spread
of the seeds' means (their seed effects and the noise of scoring each) plus the
images' own component, which no number of seeds averages away. Its degrees of
freedom are Satterthwaite's, with the seed term (S - 1 degrees of freedom) taken at
the upper bound of its 15% quantile, a small-sample correction that simulation
showed necessary at 3 seeds (SEED_DF_QUANTILE). The interval is Student's t with
those degrees of freedom, and the test of a difference is the same t. A difference is
paired twice: by seed (the same seed fixes data order and noise for both sides) and
by image (the same test images), so y[s, i] is then A's outcome minus B's.

What this gives:
- a difference that is the same on every seed (two seed-independent baselines, say)
  has no seed variance left, and is judged by the test images alone (MS_image / (S N),
  N - 1 degrees of freedom): never p = 0 with a zero-width interval unless the two
  sides agree on every image;
- with many images and few seeds the seed term dominates and the degrees of
  freedom fall towards S - 1, as they should;
- a metric without a per-image form (t-SNE trustworthiness, one number per
  embedding) gets a Student-t interval over seeds only, and says so;
- bounded metrics keep their intervals in range: an accuracy's mean is bounded
  through the logit, an MSE's through the log (delta method), a difference is clipped
  to what a difference can be.

Holm's correction runs over one family: every pair of feature spaces at one latent
size and one metric. P(A better than B) is the share of seeds on which A's value
beats B's on these test images, with a Clopper-Pearson interval (exact, and as wide
as 3 of 3 wins deserves: [0.29, 1.00]); ties count half, and its interval runs from
the wins alone to the wins and ties. No bootstrap: every figure is a closed form, so
it repeats exactly and needs no random seed.

tests/test_grid.py checks by simulation that these intervals cover the truth
93-97% of the time at 3-5 seeds and 2,000 or 10,000 images, and that Holm keeps the
false-positive rate at or under the level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from stages.common.evaluation.metrics import METRICS, Metric
from stages.common.evaluation.statistics import grouped_ranks, holm


def _stats():
    from scipy import stats

    return stats


# --------------------------------------------------------------------------- the variance of a grand mean
@dataclass(frozen=True)
class Spread:
    """The grand mean of an S x N table of outcomes, its standard error counting both noises, and its df."""

    mean: float
    se: float
    df: float
    seeds: int
    images: int


# Satterthwaite's degrees of freedom are computed with the seed term at the upper bound of
# this one-sided quantile of its chi-square: with 3-5 seeds the seed term has 2-4 degrees of
# freedom, and the plain approximation, fed a seed variance that came out small by chance,
# rejected 6-8% of true nulls at the 5% level in simulation, and Holm's families up to 6%.
# 0.15 keeps every simulated family at or under 5%; the price is intervals up to 97% wide
# where images dominate at 3 seeds (tests/test_grid.py, docs/results.md).
SEED_DF_QUANTILE = 0.15


def two_way(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grand mean, variance of the grand mean, degrees of freedom) of outcomes y[..., seed, image].

    The variance is MS_seed / (S N) (each seed's mean varies by the seed effect and by
    the noise of its own scoring) plus the image component max(0, MS_image - MS_residual)
    / (S N), an estimate never below the unbiased one. Vectorised over leading axes
    (the simulation runs hundreds of grids at once). One seed: the image term alone,
    the single run's standard error with N - 1 degrees of freedom.
    """
    y = np.asarray(y, dtype=float)
    s, n = y.shape[-2], y.shape[-1]
    grand = y.mean(axis=(-2, -1))
    seed_means, image_means = y.mean(axis=-1), y.mean(axis=-2)
    ms_image = s * ((image_means - grand[..., None]) ** 2).sum(-1) / max(n - 1, 1)
    if s == 1:
        return grand, ms_image / n, np.full_like(grand, max(n - 1, 1))
    ms_seed = n * ((seed_means - grand[..., None]) ** 2).sum(-1) / (s - 1)
    residual = y - seed_means[..., None] - image_means[..., None, :] + grand[..., None, None]
    ms_res = (residual ** 2).sum((-2, -1)) / ((s - 1) * max(n - 1, 1))
    v_seed = ms_seed / (s * n)
    v_image = np.maximum(ms_image - ms_res, 0.0) / (s * n)
    upper = v_seed * (s - 1) / _stats().chi2.ppf(SEED_DF_QUANTILE, s - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(upper > 0, upper / (upper + v_image), 0.0)
        df = np.where(share > 0, np.minimum((s - 1) / share ** 2, n - 1), float(n - 1))
    return grand, v_seed + v_image, df


def spread(y: np.ndarray) -> Spread:
    mean, variance, df = two_way(y)
    return Spread(float(mean), math.sqrt(float(variance)), float(df), y.shape[0], y.shape[1])


def seeds_only(values) -> Spread:
    """A metric with one number per seed: the Student-t standard error over seeds (S - 1 df)."""
    x = np.asarray(values, dtype=float)
    se = float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return Spread(float(x.mean()), se, float(len(x) - 1), len(x), 0)


# --------------------------------------------------------------------------- intervals
def _transform(metric: Metric):
    """(g, g', g inverse) keeping a mean's interval inside the metric's range (delta method)."""
    low, high = metric.bounds
    if metric.scale == "log":
        return math.log, lambda m: 1 / m, math.exp
    width = high - low

    def logit(m):
        p = (m - low) / width
        return math.log(p / (1 - p))

    return logit, lambda m: width / ((m - low) * (high - m)), lambda z: low + width / (1 + math.exp(-z))


def mean_interval(metric: Metric, s: Spread, confidence: float) -> tuple[float | None, float | None]:
    """The interval of a metric's mean, inside the metric's range; None where there is nothing to go on."""
    if not math.isfinite(s.se) or s.df < 1:
        return None, None
    low, high = metric.bounds
    if s.se == 0 or not low < s.mean < high:
        if metric.scale == "logit" and s.images:
            # Every outcome alike (every image right on every seed, say): no spread to estimate,
            # so the exact binomial interval of that share over the test images.
            share = (s.mean - low) / (high - low)
            k_low, k_high = _clopper_pearson(round(share * s.images), s.images, confidence)
            return low + (high - low) * k_low, low + (high - low) * k_high
        return s.mean, s.mean
    t = _stats().t.ppf((1 + confidence) / 2, s.df)
    g, slope, inverse = _transform(metric)
    half = t * s.se * slope(s.mean)
    return inverse(g(s.mean) - half), inverse(g(s.mean) + half)


@dataclass(frozen=True)
class Difference:
    """A minus B on the seeds and images they share, oriented so that positive means A is better."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    df: float
    p: float | None       # None: not testable (no spread at all, yet a difference)
    seeds: int
    images: int
    wins: int             # seeds on which A's value beats B's
    ties: int
    p_better: float       # (wins + ties / 2) / seeds
    p_better_low: float   # Clopper-Pearson, wins alone
    p_better_high: float  # Clopper-Pearson, wins and ties


def difference(metric: Metric, a, b, confidence: float, per_image: bool) -> Difference:
    """A against B: `a`, `b` are S x N outcomes (per_image) or S per-seed values, paired by position."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sign = 1.0 if metric.higher_is_better else -1.0
    d = sign * (a - b)
    s = spread(d) if per_image else seeds_only(d)
    seed_d = d.mean(axis=-1) if per_image else d
    wins, ties = int((seed_d > 0).sum()), int((seed_d == 0).sum())
    n = len(seed_d)
    p_low = _clopper_pearson(wins, n, confidence)[0]
    p_high = _clopper_pearson(wins + ties, n, confidence)[1]
    common = dict(seeds=s.seeds, images=s.images, wins=wins, ties=ties, p_better=(wins + ties / 2) / n,
                  p_better_low=p_low, p_better_high=p_high)
    if not math.isfinite(s.se) or s.df < 1:
        return Difference(s.mean, None, None, s.df, None, **common)
    if s.se == 0:
        # No spread at all: identical outcomes are no evidence of a difference; a difference
        # without any spread (every image, every seed alike) is not a testable claim either.
        if s.mean == 0:
            return Difference(0.0, 0.0, 0.0, s.df, 1.0, **common)
        return Difference(s.mean, None, None, s.df, None, **common)
    t_crit = _stats().t.ppf((1 + confidence) / 2, s.df)
    p = float(2 * _stats().t.sf(abs(s.mean / s.se), s.df))
    reach = metric.bounds[1] - metric.bounds[0]
    low, high = max(-reach, s.mean - t_crit * s.se), min(reach, s.mean + t_crit * s.se)
    return Difference(s.mean, low, high, s.df, p, **common)


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    interval = _stats().binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


# --------------------------------------------------------------------------- a whole grid
def _outcomes(rows: list[dict], dim: int, name: str, metric: Metric) -> dict:
    """seed -> what a cell has for `metric`: its per-image outcomes where there are any, else its value."""
    found = {}
    for r in rows:
        if r["latent_dim"] != dim or r["name"] != name:
            continue
        if metric.per_image and metric.key in r.get("per_image", {}):
            found[r["seed"]] = r["per_image"][metric.key]
        elif not metric.per_image and r.get(metric.key) is not None:
            found[r["seed"]] = r[metric.key]
    return found


def _names(rows: list[dict]) -> list:
    return list(dict.fromkeys(r["name"] for r in rows))


def _dims(rows: list[dict]) -> list:
    return sorted({r["latent_dim"] for r in rows})


def aggregate(rows: list[dict], confidence: float) -> list[dict]:
    """Per latent size, feature space and metric: seeds, images, mean and its interval (both noises if it can)."""
    out = []
    for dim in _dims(rows):
        for name in _names(rows):
            for metric in METRICS:
                found = _outcomes(rows, dim, name, metric)
                if not found:
                    continue
                seeds = sorted(found)
                if metric.per_image:
                    s = spread(np.stack([found[seed] for seed in seeds]))
                else:
                    s = seeds_only([found[seed] for seed in seeds])
                low, high = mean_interval(metric, s, confidence)
                out.append({"latent_dim": dim, "name": name, "metric": metric.key, "seeds": s.seeds,
                            "images": s.images, "mean": s.mean, "ci_low": low, "ci_high": high,
                            "noise": "seeds and test images" if metric.per_image else "seeds only"})
    return out


def compare(rows: list[dict], confidence: float, alpha: float) -> list[dict]:
    """Every pair at each latent size and metric, on the seeds both have, Holm-corrected within that family."""
    out = []
    for dim in _dims(rows):
        for metric in METRICS:
            family = []
            for a, b in combinations(_names(rows), 2):
                va, vb = _outcomes(rows, dim, a, metric), _outcomes(rows, dim, b, metric)
                seeds = sorted(set(va) & set(vb))
                if len(seeds) < (1 if metric.per_image else 2):
                    continue
                family.append((a, b, difference(metric, [va[s] for s in seeds], [vb[s] for s in seeds],
                                                confidence, metric.per_image)))
            testable = [d.p for _, _, d in family if d.p is not None]
            adjusted = iter(holm(testable)) if testable else iter(())
            for a, b, d in family:
                p_holm = next(adjusted) if d.p is not None else None
                significant = p_holm is not None and p_holm < alpha
                out.append({"latent_dim": dim, "metric": metric.key, "a": a, "b": b, "seeds": d.seeds,
                            "images": d.images, "mean_diff": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high,
                            "df": d.df, "p": d.p, "p_holm": p_holm, "significant": significant,
                            "better": (a if d.mean > 0 else b) if significant else None,
                            "wins": d.wins, "ties": d.ties, "p_better": d.p_better,
                            "p_better_low": d.p_better_low, "p_better_high": d.p_better_high})
    return out


def ranks(rows: list[dict], comparisons: list[dict]) -> dict:
    """(latent_dim, metric) -> name -> grouped rank, from the significant comparisons."""
    out = {}
    for dim in _dims(rows):
        for metric in METRICS:
            names = [n for n in _names(rows) if _outcomes(rows, dim, n, metric)]
            if not names:
                continue
            better = {(c["better"], c["b"] if c["better"] == c["a"] else c["a"]) for c in comparisons
                      if c["latent_dim"] == dim and c["metric"] == metric.key and c["significant"]}
            out[(dim, metric.key)] = grouped_ranks(names, better)
    return out
