"""The statistics of the reports, against scipy and hand computations on known inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from stages.common.evaluation.statistics import (
    Summary,
    compare_paired,
    grouped_ranks,
    holm,
    mcnemar_exact,
    standard_error,
    summarise,
    wilson_interval,
)


def test_the_interval_over_five_seeds_is_mean_plus_minus_t_times_the_standard_error():
    values = [0.90, 0.92, 0.91, 0.95, 0.93]
    summary = summarise(values)
    s = np.std(values, ddof=1)
    half = 2.776445105 * s / math.sqrt(5)  # t(0.975, 4)
    assert summary.n == 5 and summary.mean == pytest.approx(0.922)
    assert summary.std == pytest.approx(s)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((0.922 - half, 0.922 + half))
    interval = stats.ttest_1samp(values, 0).confidence_interval()
    assert (summary.ci_low, summary.ci_high) == pytest.approx((interval.low, interval.high))


def test_one_seed_has_no_interval_and_identical_seeds_a_zero_width_one():
    assert summarise([0.5]) == Summary(1, 0.5, None, None, None)
    flat = summarise([0.7, 0.7, 0.7])
    assert (flat.std, flat.ci_low, flat.ci_high) == (0.0, 0.7, 0.7)


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
    low, high = wilson_interval(1960, 2000)
    z = stats.norm.ppf(0.975)
    p, n = 0.98, 2000
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert high - low == pytest.approx(0.0124, abs=0.001)  # about +-0.6 points, as the notes say
    assert standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)


def test_paired_comparison_matches_scipy_and_orients_by_what_is_better():
    a = [0.010, 0.012, 0.011, 0.013, 0.012]  # MSE: lower is better, A is better
    b = [0.020, 0.021, 0.019, 0.022, 0.020]
    result = compare_paired(a, b, higher_is_better=False)
    test = stats.ttest_rel(b, a)
    assert result.p_value == pytest.approx(test.pvalue)
    assert result.mean_diff == pytest.approx(np.mean(b) - np.mean(a)) and result.mean_diff > 0
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(test.confidence_interval()))
    diff = np.subtract(b, a)
    assert result.effect_size == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert result.p_improvement == 1.0


def test_two_architectures_within_the_noise_come_out_indistinguishable():
    rng = np.random.default_rng(0)
    a = 0.95 + rng.normal(0, 0.01, 5)
    b = a + rng.normal(0, 0.01, 5)  # the same on average
    result = compare_paired(a, b, higher_is_better=True)
    assert holm([result.p_value])[0] > 0.05
    assert 0.0 < result.p_improvement < 1.0 and result.p_improvement_low < 0.5 < result.p_improvement_high
    assert grouped_ranks(["a", "b"], set()) == {"a": 1, "b": 1}


def test_a_clear_difference_is_significant_and_ranks_apart():
    a = [0.95, 0.96, 0.955, 0.962, 0.958]
    b = [0.90, 0.905, 0.899, 0.91, 0.903]
    result = compare_paired(a, b, higher_is_better=True)
    assert result.p_value < 0.001 and result.ci_low > 0
    ranks = grouped_ranks(["a", "b", "c"], {("a", "b"), ("a", "c")})
    assert ranks == {"a": 1, "b": 2, "c": 2}


def test_identical_series_are_no_evidence_and_a_constant_difference_is_no_noise():
    result = compare_paired([0.9, 0.8], [0.9, 0.8], higher_is_better=True)
    assert result.p_value == 1.0 and result.mean_diff == 0 and result.p_improvement == 0.5
    constant = compare_paired([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], higher_is_better=True)
    assert constant.p_value == 0.0 and constant.mean_diff == pytest.approx(0.1) and constant.p_improvement == 1.0
    with pytest.raises(ValueError):
        compare_paired([0.9], [0.8], higher_is_better=True)
