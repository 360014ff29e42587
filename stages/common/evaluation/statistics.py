"""Telling a difference from noise within one run: test-image intervals, McNemar, Holm, grouped ranks.

Within one run (the stages and the single-run report): an accuracy's Wilson
interval over the test images, a mean squared error's standard error over the test
images, and two classifiers on the same test images compared with McNemar's exact
test. Many tests at once are corrected with Holm's step-down method, and ranks are
given in groups: a feature space's rank is one plus the number significantly better
than it, so those that no test separates share a rank. Over seeds *and* test
images (a grid): stages/common/evaluation/grid.py, which uses Holm and the ranks
from here.

Every test and interval is scipy's; only Holm's few lines are written here, as
scipy has none (its `false_discovery_control` is Benjamini-Hochberg). The stages
import this module, so it holds only what they need: a change here reruns them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _stats():
    # scipy.stats takes half a second to import; the train stage needs only `standard_error`.
    from scipy import stats

    return stats


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


def wilson_interval(correct: int, total: int, confidence: float) -> tuple[float, float]:
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
