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
estimated as v_seed + v_image, v_seed = MS_seed / (S N) (the spread of the seeds'
means: their seed effects and the noise of scoring each, S - 1 degrees of freedom)
and v_image = max(0, MS_image - MS_residual) / (S N), the images' own component,
which no number of seeds averages away.

The interval is the generalized pivotal quantity of Tsui & Weerahandi (1989) and
Weerahandi (1993, "Generalized confidence intervals", JASA 88): the error of the
mean is distributed as

    T = Z * sqrt(v_seed * (S - 1) / U + v_image),   Z ~ N(0, 1), U ~ chi-square(S - 1),

since v_seed * (S - 1) / (its true value) is chi-square(S - 1) and the image term,
with N - 1 >= 1,999 degrees of freedom here, is known to within a fraction of a
percent. Its distribution is a one-dimensional integral over U, computed by
Gauss-Legendre quadrature on sqrt(U), to a relative 1e-6 or better (`pivot_sf`): no tuned
constant, no random draws. With v_image = 0 it is exactly Student's t with S - 1
degrees of freedom (a seed-only interval); with v_seed = 0 the normal interval of the
images. The test of a difference is the same pivot's two-sided tail at the observed
mean. (The last release used Satterthwaite's degrees of freedom with the seed term at
the bound of its 15% chi-square quantile, a constant tuned by simulation; this is its
derived replacement, and covers the same, tests/test_grid.py.) A difference is paired
twice: by seed (the same seed fixes data order and noise for both sides) and by image
(the same test images), so y[s, i] is then A's outcome minus B's.

What this gives:
- a difference that is the same on every seed (two seed-independent baselines, say)
  has no seed variance left, and is judged by the test images alone: never p = 0
  with a zero-width interval unless the two sides agree on every image;
- where outcomes do vary but both estimated components vanish (every seed's mean
  difference alike and MS_image <= MS_residual: on each seed B misses two other
  images), the residual mean square, a lower bound of the variance with (S - 1)(N - 1)
  degrees of freedom, takes the images' place: such a difference is tested, never
  dropped as "not testable";
- with many images and few seeds the seed term dominates and the interval widens
  towards Student's t with S - 1 degrees of freedom, as it should;
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

tests/test_grid.py checks by simulation that these intervals, of differences and of
accuracies and MSEs through the logit and the log, cover the truth 93-97% of the time
at 3-5 seeds and 1,000 to 10,000 images, and that Holm keeps the false-positive rate
at or under the level.
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
    """The grand mean of an S x N table of outcomes and the two terms of its variance: the seeds' (v_seed, with
    seed_df = S - 1 degrees of freedom) and the test images' (v_image)."""

    mean: float
    v_seed: float
    v_image: float
    seed_df: int
    seeds: int
    images: int

    @property
    def se(self) -> float:
        return math.sqrt(self.v_seed + self.v_image)

    @property
    def seed_share(self) -> float:
        """The seeds' share of the variance of the mean (1: seeds only; 0: the images alone)."""
        total = self.v_seed + self.v_image
        return self.v_seed / total if total > 0 else 0.0


def two_way(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(grand mean, v_seed, v_image, S - 1) of outcomes y[..., seed, image], vectorised over leading axes (the
    simulation runs hundreds of grids at once).

    v_seed = MS_seed / (S N); v_image = max(0, MS_image - MS_residual) / (S N), an estimate
    never below the unbiased one; where both vanish yet outcomes vary, v_image is
    MS_residual / (S N), a lower bound of the variance (module docstring). One seed: the
    image term alone, the single run's squared standard error.
    """
    y = np.asarray(y, dtype=float)
    s, n = y.shape[-2], y.shape[-1]
    grand = y.mean(axis=(-2, -1))
    seed_means, image_means = y.mean(axis=-1), y.mean(axis=-2)
    ms_image = s * ((image_means - grand[..., None]) ** 2).sum(-1) / max(n - 1, 1)
    if s == 1:
        return grand, np.zeros_like(grand), ms_image / n, 0
    ms_seed = n * ((seed_means - grand[..., None]) ** 2).sum(-1) / (s - 1)
    residual = y - seed_means[..., None] - image_means[..., None, :] + grand[..., None, None]
    ms_res = (residual ** 2).sum((-2, -1)) / ((s - 1) * max(n - 1, 1))
    v_seed = ms_seed / (s * n)
    v_image = np.maximum(ms_image - ms_res, 0.0) / (s * n)
    collapsed = (v_seed + v_image == 0) & (ms_res > 0)
    return grand, v_seed, np.where(collapsed, ms_res / (s * n), v_image), s - 1


def spread(y: np.ndarray) -> Spread:
    mean, v_seed, v_image, seed_df = two_way(y)
    return Spread(float(mean), float(v_seed), float(v_image), seed_df, y.shape[0], y.shape[1])


def seeds_only(values) -> Spread:
    """A metric with one number per seed: the Student-t standard error over seeds (S - 1 df)."""
    x = np.asarray(values, dtype=float)
    v_seed = float(np.var(x, ddof=1) / len(x)) if len(x) > 1 else float("nan")
    return Spread(float(x.mean()), v_seed, 0.0, len(x) - 1, len(x), 0)


# --------------------------------------------------------------------------- the generalized pivot
# Gauss-Legendre on r = sqrt(U), U ~ chi-square(k), over r in [0, the chi(k) quantile 1 - 1e-15], in panels
# that shrink geometrically towards 0: the integrand is smooth in r (in U it has a square-root cusp at 0), and
# the far tail of T (large x, a small p) lives at r near 0, where the panels put their nodes. Checked against
# Student's t, the case v_image = 0, to a relative 1e-6 or better out to p = 1e-9 (tests/test_grid.py).
PIVOT_PANELS = (0.0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0)
PIVOT_NODES = 24
_PIVOT_RULES: dict = {}


def _pivot_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes r = sqrt(U) and weights (summing to 1) for expectations over U ~ chi-square(k)."""
    if k not in _PIVOT_RULES:
        stats = _stats()
        x, w = np.polynomial.legendre.leggauss(PIVOT_NODES)
        top = math.sqrt(stats.chi2.ppf(1 - 1e-15, k))
        edges = top * np.asarray(PIVOT_PANELS)
        r = np.concatenate([lo + (x + 1) / 2 * (hi - lo) for lo, hi in zip(edges[:-1], edges[1:])])
        w = np.concatenate([w * (hi - lo) / 2 for lo, hi in zip(edges[:-1], edges[1:])]) * stats.chi.pdf(r, k)
        _PIVOT_RULES[k] = (r, w / w.sum())
    return _PIVOT_RULES[k]


def pivot_sf(x, v_seed, v_image, k: int) -> np.ndarray:
    """P(T > x) for T = Z * sqrt(v_seed * k / U + v_image), U ~ chi-square(k) (k = 0: no seed term); vectorised."""
    from scipy.special import ndtr

    x, v_seed, v_image = (np.asarray(a, dtype=float) for a in (x, v_seed, v_image))
    if k == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            return ndtr(-x / np.sqrt(v_image))
    r, w = _pivot_rule(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = r / np.sqrt(v_seed[..., None] * k + v_image[..., None] * r ** 2)
    return (w * ndtr(-x[..., None] * scale)).sum(-1)


def pivot_half_width(confidence: float, v_seed, v_image, k: int) -> np.ndarray:
    """c with P(|T| <= c) = confidence: the half-width of the interval, on the outcome's scale; vectorised."""
    stats = _stats()
    v_seed, v_image = np.asarray(v_seed, dtype=float), np.asarray(v_image, dtype=float)
    tail = (1 - confidence) / 2
    # A bracket: the quantile lies between the larger and the sum of the two terms' own quantiles.
    t_part = np.sqrt(v_seed) * (stats.t.ppf(1 - tail, k) if k else 0.0)
    z_part = np.sqrt(v_image) * stats.norm.ppf(1 - tail)
    low, high = np.maximum(t_part, z_part), (t_part + z_part) * 2
    for _ in range(8):
        short = pivot_sf(high, v_seed, v_image, k) > tail
        if not short.any():
            break
        high = np.where(short, high * 4, high)
    for _ in range(64):  # bisection to well below a millionth of the width
        middle = (low + high) / 2
        above = pivot_sf(middle, v_seed, v_image, k) > tail
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    return (low + high) / 2


def pivot_p(mean, v_seed, v_image, k: int) -> np.ndarray:
    """The two-sided p of a mean difference against 0 under the pivot; vectorised."""
    return np.minimum(1.0, 2 * pivot_sf(np.abs(np.asarray(mean, dtype=float)), v_seed, v_image, k))


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
    if not math.isfinite(s.se):
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
    g, slope, inverse = _transform(metric)
    half = float(pivot_half_width(confidence, s.v_seed, s.v_image, s.seed_df)) * slope(s.mean)
    return inverse(g(s.mean) - half), inverse(g(s.mean) + half)


@dataclass(frozen=True)
class Difference:
    """A minus B on the seeds and images they share, oriented so that positive means A is better."""

    mean: float
    ci_low: float | None
    ci_high: float | None
    seed_share: float     # the seeds' share of the variance of the difference (0: judged by the images alone)
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
    d, s = _paired(metric, a, b, per_image)
    seed_d = d.mean(axis=-1) if per_image else d
    wins, ties = int((seed_d > 0).sum()), int((seed_d == 0).sum())
    n = len(seed_d)
    p_low = _clopper_pearson(wins, n, confidence)[0]
    p_high = _clopper_pearson(wins + ties, n, confidence)[1]
    common = dict(seeds=s.seeds, images=s.images, wins=wins, ties=ties, p_better=(wins + ties / 2) / n,
                  p_better_low=p_low, p_better_high=p_high)
    if not math.isfinite(s.se):
        return Difference(s.mean, None, None, s.seed_share, None, **common)
    if s.se == 0:
        # No spread at all: identical outcomes are no evidence of a difference; a difference
        # without any spread (every image, every seed alike) is not a testable claim either.
        if s.mean == 0:
            return Difference(0.0, 0.0, 0.0, 0.0, 1.0, **common)
        return Difference(s.mean, None, None, 0.0, None, **common)
    half = float(pivot_half_width(confidence, s.v_seed, s.v_image, s.seed_df))
    p = float(pivot_p(s.mean, s.v_seed, s.v_image, s.seed_df))
    reach = metric.bounds[1] - metric.bounds[0]
    low, high = max(-reach, s.mean - half), min(reach, s.mean + half)
    return Difference(s.mean, low, high, s.seed_share, p, **common)


def _paired(metric: Metric, a, b, per_image: bool) -> tuple[np.ndarray, Spread]:
    """A minus B, signed so that positive means A is better, and the spread of its mean."""
    d = (1.0 if metric.higher_is_better else -1.0) * (np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    return d, spread(d) if per_image else seeds_only(d)


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
                            "seed_share": d.seed_share, "p": d.p, "p_holm": p_holm, "significant": significant,
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


# --------------------------------------------------------------------------- across latent sizes
@dataclass(frozen=True)
class Margin:
    """How far from the best latent size still counts as the same: `value` on the metric's own scale, or, with
    `relative`, as a share of the best size's mean (an MSE)."""

    value: float
    relative: bool


def latent_sizes(rows: list[dict], alpha: float, margins: dict, power: float = 0.8) -> list[dict]:
    """For each feature space with more than one latent size and each metric with a margin: every size against
    that feature space's best size (best mean), paired by seed and image, and a step-down equivalence test of the
    sizes below the best (`_step_down`), each with the (1 - 2 alpha) interval that goes with a test at alpha.
    `smallest_sufficient`: the last size the step-down showed equivalent (or
    the best itself). Each size left undecided gets the seeds that would decide it (`seeds_to_decide`)."""
    out = []
    for name in _names(rows):
        for metric in METRICS:
            if metric.key not in margins:
                continue
            found = {dim: _outcomes(rows, dim, name, metric) for dim in _dims(rows)}
            found = {dim: v for dim, v in found.items() if v}
            if len(found) < 2:
                continue
            out += _against_best(metric, name, found, alpha, margins[metric.key], power)
    return out


def one_sided_ps(s: Spread, margin: float) -> tuple[float, float] | None:
    """(p of "the difference is above -margin", p of "it is below +margin") under the pivot, a difference oriented
    so that positive is better (small p: shown); without any spread, the limit: 0 where it holds, else 1; None
    where the spread is not a number."""
    if not math.isfinite(s.se):
        return None
    if s.se == 0:
        return float(s.mean <= -margin), float(s.mean >= margin)
    below = float(pivot_sf(s.mean + margin, s.v_seed, s.v_image, s.seed_df))    # H0: difference <= -margin
    above = float(pivot_sf(margin - s.mean, s.v_seed, s.v_image, s.seed_df))    # H0: difference >= +margin
    return below, above


def _step_down(family: list[dict], best: int, alpha: float) -> None:
    """The fixed-sequence test (Maurer, Hothorn & Lehmacher 1995; Hsu & Berger 1999): the sizes below the best,
    largest first, each equivalence test at the full level alpha, stopping at the first that is not shown. The
    order is fixed by the sizes alone, before any outcome is seen, so the chance of calling any size sufficient
    when it is worse by the margin stays at most alpha with no correction (tests/test_grid.py simulates it)."""
    reached = True
    for record in sorted((r for r in family if r["latent_dim"] < best), key=lambda r: -r["latent_dim"]):
        p = record["p_equivalence"]
        record["in_sequence"] = reached
        record["equivalent"] = reached and p is not None and p < alpha
        reached = record["equivalent"]


# What one size's comparison with its feature space's best can end in (`verdict`).
VERDICTS = ("best", "sufficient", "worse", "larger", "not reached", "undecided")


def verdict(record: dict, alpha: float) -> str:
    """What one size's comparison with the best decided: best, sufficient (the step-down showed it equivalent),
    worse (worse than the best by more than the margin, one-sided at alpha), larger (above the best, and not
    shown worse), not reached (equivalent on its own, after a larger size the step-down could not show), or
    undecided."""
    if record["latent_dim"] == record["best_dim"]:
        return "best"
    if record["equivalent"]:
        return "sufficient"
    if record["p_worse"] is not None and record["p_worse"] < alpha:
        return "worse"
    if record["latent_dim"] > record["best_dim"]:
        return "larger"  # not a candidate: a size above the best is never the smallest that suffices
    if record["p_equivalence"] is not None and record["p_equivalence"] < alpha:
        return "not reached"
    return "undecided"


def _against_best(metric: Metric, name: str, found: dict, alpha: float, margin: Margin, power: float):
    def mean_of(values: dict) -> float:
        return float(np.mean([np.mean(v) for v in values.values()]))

    means = {dim: mean_of(values) for dim, values in found.items()}
    sign = 1.0 if metric.higher_is_better else -1.0
    best = max(means, key=lambda dim: (sign * means[dim], -dim))  # a tie: the smaller size
    bound = margin.value * means[best] if margin.relative else margin.value
    family, spreads = [], {}
    for dim in sorted(found):
        seeds = sorted(set(found[dim]) & set(found[best]))
        record = {"name": name, "metric": metric.key, "latent_dim": dim, "best_dim": best, "seeds": len(seeds),
                  "images": 0, "mean": means[dim], "mean_diff": 0.0, "ci_low": None, "ci_high": None,
                  "margin": bound, "p_equivalence": None, "p_worse": None, "in_sequence": False,
                  "equivalent": dim == best, "seeds_to_decide": None}
        if dim != best and len(seeds) >= (1 if metric.per_image else 2):
            here, there = [found[dim][k] for k in seeds], [found[best][k] for k in seeds]
            _, s = _paired(metric, here, there, metric.per_image)
            # The interval that goes with a test at level alpha: equivalent exactly when it lies inside the margin.
            diff = difference(metric, here, there, 1 - 2 * alpha, metric.per_image)
            ps = one_sided_ps(s, bound)
            record.update(images=s.images, mean_diff=s.mean, ci_low=diff.ci_low, ci_high=diff.ci_high,
                          p_equivalence=None if ps is None else max(ps),
                          p_worse=None if ps is None else 1.0 - ps[0])
            spreads[dim] = s
        family.append(record)
    _step_down(family, best, alpha)
    smallest = min(r["latent_dim"] for r in family if r["equivalent"])
    for record in family:
        record["smallest_sufficient"] = smallest
        record["verdict"] = verdict(record, alpha)
        if record["verdict"] == "undecided" and record["latent_dim"] in spreads:
            record["seeds_to_decide"] = seeds_to_decide(spreads[record["latent_dim"]], bound, alpha, power)
    return family


# --------------------------------------------------------------------------- planning seeds
MAX_PLANNED_SEEDS = 100


def decision_power(s: Spread, margin: float, alpha: float, seeds: int) -> float:
    """The chance that `seeds` seeds (on the same test images) decide a size against the best, either way: show it
    equivalent within +-margin or worse by more than the margin, each at level alpha, if the true difference is the
    one observed and the variance components are those estimated (the seeds' term shrinks as 1/seeds, the test
    images' does not). A normal approximation of the estimate, with the pivot's own critical values."""
    from scipy.special import ndtr

    v_seed = s.v_seed * s.seeds / seeds
    se = math.sqrt(v_seed + s.v_image)
    if se == 0:
        return 1.0
    critical = float(pivot_half_width(1 - 2 * alpha, v_seed, s.v_image, seeds - 1))
    delta = s.mean
    equivalent = max(0.0, float(ndtr((margin - critical - delta) / se) - ndtr((critical - margin - delta) / se)))
    worse = float(ndtr((-margin - critical - delta) / se))
    return min(1.0, equivalent + worse)


def seeds_to_decide(s: Spread, margin: float, alpha: float, power: float) -> int | None:
    """The fewest seeds (more than the study has) with `decision_power` at least `power`; None when not even
    MAX_PLANNED_SEEDS would (a difference at the margin, or the test images' own noise too wide)."""
    if s.seeds < 2 or not math.isfinite(s.se):
        return None
    if decision_power(s, margin, alpha, MAX_PLANNED_SEEDS) < power:
        return None
    low, high = s.seeds, MAX_PLANNED_SEEDS   # power(low) < target (it is undecided), power(high) >= target
    while high - low > 1:
        middle = (low + high) // 2
        if decision_power(s, margin, alpha, middle) >= power:
            high = middle
        else:
            low = middle
    return high


# --------------------------------------------------------------------------- which runs count
def judge_runs(rows: list[dict], failure_mse_fraction: float, convergence_drop: float) -> list[dict]:
    """Each row with `failed` and `converged` said, by rules fixed before any result is seen (docs/study.md): an
    autoencoder's run failed when its test MSE is no better than `failure_mse_fraction` of the MSE of predicting
    every pixel's training-set mean; it had converged when its training loss fell by at most `convergence_drop`
    (a share) over the last fifth of its steps. A baseline, or a run without those records, is neither."""
    judged = []
    for row in rows:
        reference, test_mse, drop = row.get("mean_image_mse"), row.get("test_mse"), row.get("loss_drop_last_fifth")
        failed = reference is not None and test_mse is not None and test_mse >= failure_mse_fraction * reference
        converged = None if drop is None else drop <= convergence_drop
        judged.append({**row, "failed": bool(failed), "converged": converged})
    return judged


def run_counts(rows: list[dict], confidence: float) -> list[dict]:
    """Per latent size and feature space with judged runs: the runs, the failures with their Clopper-Pearson
    interval (the chance that a run of this set-up fails), the runs that had not converged, and the VAE's active
    units over the runs that did not fail (mean, min, max)."""
    out = []
    for dim in _dims(rows):
        for name in _names(rows):
            runs = [r for r in rows if r["latent_dim"] == dim and r["name"] == name]
            if not runs or all(r.get("mean_image_mse") is None for r in runs):
                continue
            failed = sum(r["failed"] for r in runs)
            low, high = _clopper_pearson(failed, len(runs), confidence)
            active = [r["active_units"] for r in runs if not r["failed"] and r.get("active_units") is not None]
            out.append({"latent_dim": dim, "name": name, "runs": len(runs), "failed": failed, "failed_ci_low": low,
                        "failed_ci_high": high, "unconverged": sum(r["converged"] is False for r in runs),
                        "active_units_mean": float(np.mean(active)) if active else None,
                        "active_units_min": min(active) if active else None,
                        "active_units_max": max(active) if active else None})
    return out
