"""Class-balanced, deterministic selection of images."""
from __future__ import annotations

import numpy as np
import pytest

from stages.common.data.sampling import balanced_indices, first_per_class
from stages.common.errors import PipelineError


def test_balanced_limit_takes_classes_in_turn_and_keeps_data_order():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 45)
    picked = balanced_indices(labels, 30)
    assert len(picked) == 30
    assert np.all(np.diff(picked) > 0)
    counts = np.bincount(labels[picked])
    assert list(counts) == [13, 5, 12]  # class 1 gives all it has, the others share the rest


def test_balanced_is_deterministic_and_nested():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    small, large = balanced_indices(labels, 100), balanced_indices(labels, 200)
    np.testing.assert_array_equal(small, balanced_indices(labels, 100))
    assert set(small) <= set(large)
    assert np.bincount(labels[small], minlength=10).tolist() == [10] * 10


def test_no_limit_or_large_limit_keeps_everything():
    labels = np.arange(10)
    np.testing.assert_array_equal(balanced_indices(labels, None), np.arange(10))
    np.testing.assert_array_equal(balanced_indices(labels, 50), np.arange(10))


def test_first_per_class_in_test_set_order():
    labels = np.array([3, 1, 3, 0, 1, 3, 0, 1, 0])
    np.testing.assert_array_equal(first_per_class(labels, 2), [0, 1, 2, 3, 4, 6])
    np.testing.assert_array_equal(first_per_class(labels, None), np.arange(9))


def test_first_per_class_asking_too_many():
    with pytest.raises(PipelineError, match="tsne.per_class is 4; the test split holds only 3 images of class 0"):
        first_per_class(np.array([0, 0, 0, 1, 1, 1, 1]), 4)
