"""The single run's statistics (statistics.py), against scipy and hand computations on known inputs.

The grid's, over seeds and test images, are tests/test_grid.py's.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from stages.common.evaluation.statistics import grouped_ranks, holm, mcnemar_exact, standard_error, wilson_interval


def test_holm_on_a_textbook_case():
    # m = 4: sorted p 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06.
    assert holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.001]) == [0.001]


def test_holm_order_rejects_the_smallest_first():
    adjusted = holm([0.012, 0.2, 0.004, 0.013])
    assert [p < 0.05 for p in adjusted] == [True, False, True, True]
    assert adjusted[2] == pytest.approx(0.016) and adjusted[0] == pytest.approx(0.036)


def test_mcnemar_on_a_hand_made_table():
    # 10 images only A got right, 2 only B: exact two-sided binomial p of 2 in 12.
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 8, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 8, bool)
    result = mcnemar_exact(a, b)
    assert (result.only_a, result.only_b) == (10, 2)
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2**12
    assert result.p_value == pytest.approx(expected)
    assert mcnemar_exact(a, a).p_value == 1.0


def test_wilson_interval_and_standard_error():
    low, high = wilson_interval(1960, 2000, 0.95)
    z = stats.norm.ppf(0.975)
    p, n = 0.98, 2000
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert high - low == pytest.approx(0.0124, abs=0.001)  # about +-0.6 points, as the notes say
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


def test_wilson_follows_the_confidence_asked_for():
    narrow, wide = wilson_interval(180, 200, 0.80), wilson_interval(180, 200, 0.99)
    assert wide[0] < narrow[0] < 0.9 < narrow[1] < wide[1]


def test_grouped_ranks_share_a_rank_where_no_test_separates():
    ranks = grouped_ranks(["a", "b", "c"], {("a", "c"), ("b", "c")})
    assert ranks == {"a": 1, "b": 1, "c": 3}
