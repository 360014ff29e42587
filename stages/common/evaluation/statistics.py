"""Telling a difference from noise: intervals over seeds and test images, paired tests, Holm, grouped ranks.

Over seeds (the sweep): each metric's mean with a Student-t 95% interval; two
architectures compared with a paired t-test on the per-seed differences (the same
seed fixes the data order and noise for both), the mean difference with its
interval, the effect size (mean difference over the differences' standard
deviation) and the probability of improvement P(A better than B), the share of
seeds on which A wins, with a bootstrap interval. Many pairs at once are corrected
with Holm's step-down method. Ranks are given in groups: an architecture's rank is
one plus the number of architectures significantly better than it, so those that
no test separates share a rank.

Within one run (the single-run report): an accuracy's Wilson interval over the
test images, a mean squared error's standard error over the test images, and two
classifiers on the same test images compared with McNemar's exact test.

Every test and interval is scipy's; only Holm's few lines are written here, as
scipy has none (its `false_discovery_control` is Benjamini-Hochberg).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def _stats():
    # scipy.stats takes half a second to import; the train stage needs only `standard_error`.
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: count, mean, sample standard deviation and the t interval of the mean."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


def summarise(values, confidence: float = CONFIDENCE) -> Summary:
    """Mean, standard deviation and Student-t interval of `values` (no spread or interval from one value)."""
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(np.mean(x))
    if n < 2:
        return Summary(n, mean, None, None, None)
    if np.all(x == x[0]):
        return Summary(n, float(x[0]), 0.0, float(x[0]), float(x[0]))
    std = float(np.std(x, ddof=1))
    low, high = _stats().t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high))


@dataclass(frozen=True)
class Comparison:
    """A against B over the same seeds, `diff` = A - B oriented so that positive means A is better."""

    n: int
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float
    effect_size: float | None
    p_improvement: float
    p_improvement_low: float
    p_improvement_high: float


def compare_paired(a, b, higher_is_better: bool, confidence: float = CONFIDENCE, seed: int = 0) -> Comparison:
    """Paired t-test of A against B over seeds (element i of each from seed i)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("a paired comparison needs two equal-length series of at least two values")
    diff = (a - b) if higher_is_better else (b - a)
    n, mean = len(diff), float(diff.mean())
    wins = (diff > 0).astype(float) + 0.5 * (diff == 0)
    p_improvement = float(wins.mean())
    if np.allclose(diff, diff[0], rtol=1e-9, atol=0):
        # No spread across seeds (to rounding) (deterministic on both sides, as a baseline can be): the t-test is
        # undefined, and its limit is taken. Identical results are no evidence of a difference; a
        # difference that is the same on every seed is not noise (p 0, a zero-width interval).
        p = 1.0 if mean == 0 else 0.0
        return Comparison(n, mean, mean, mean, p, None, p_improvement, p_improvement, p_improvement)
    test = _stats().ttest_rel(a, b) if higher_is_better else _stats().ttest_rel(b, a)
    interval = test.confidence_interval(confidence)
    sd = float(diff.std(ddof=1))
    low, high = _bootstrap_share(wins, confidence, seed)
    return Comparison(n, mean, float(interval.low), float(interval.high), float(test.pvalue), mean / sd,
                      p_improvement, low, high)


def _bootstrap_share(wins: np.ndarray, confidence: float, seed: int) -> tuple[float, float]:
    if np.all(wins == wins[0]):
        return float(wins[0]), float(wins[0])
    result = _stats().bootstrap((wins,), np.mean, confidence_level=confidence, method="percentile",
                             n_resamples=2000, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (family-wise error control)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def grouped_ranks(names: list, better: set) -> dict:
    """Rank = 1 + how many others are significantly better; `better` holds (winner, loser) pairs."""
    return {name: 1 + sum((other, name) in better for other in names if other != name) for name in names}


def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of an accuracy of `correct` out of `total`."""
    interval = _stats().binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def standard_error(values) -> float:
    """The standard error of the mean of `values` (per-image errors, for a test MSE)."""
    x = np.asarray(values, dtype=float)
    return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


@dataclass(frozen=True)
class McNemar:
    """Two classifiers on the same test images: images only A got right, only B got right, exact p."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """McNemar's exact test: a two-sided binomial test on the discordant images."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(_stats().binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, p)
