"""The SVM scorer: both implementations agree, and prediction repeats exactly, threads or not."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from stages.common.evaluation import classify
from stages.common.evaluation.classify import fit_and_score, make_svm, parallel_predict, predict_reproducibly

SVM = {"kernel": "rbf", "C": 10, "gamma": "scale", "scale": False, "n_jobs": 2}


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    features = rng.normal(size=(n, 8)) + labels[:, None] * 1.5
    return features.astype(np.float32), labels


def test_threaded_prediction_equals_a_single_call():
    x, y = blobs(400, 0)
    x_test, _ = blobs(3000, 1)
    model = SVC(C=10).fit(x, y)
    np.testing.assert_array_equal(parallel_predict(model, x_test, n_jobs=2), model.predict(x_test))


def test_sklearnex_prediction_repeats_exactly():
    # Some thousands of support vectors in 64 dimensions, like a latent space: here
    # oneDAL's prediction on every core gave 1 to 4 different decision values in 4 calls.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 12_000)
    features = (rng.normal(size=(10, 64))[labels] + 3 * rng.normal(size=(12_000, 64))).astype(np.float32)
    model = make_svm("rbf", 10, "scale", scale=True, implementation="sklearnex").fit(features[:8000], labels[:8000])
    assert len(model[-1].support_) > 5000
    x_test = features[8000:]
    predicted = [predict_reproducibly(model, x_test, "sklearnex", n_jobs=2) for _ in range(3)]
    assert all(np.array_equal(p, predicted[0]) for p in predicted)
    # The decision values themselves, which move before any label does.
    decisions = {model.decision_function(x_test).tobytes() for _ in range(8)}
    assert len(decisions) == 1


@pytest.mark.parametrize("implementation", ["sklearn", "sklearnex"])
def test_metrics_and_confusion(implementation):
    x, y = blobs(400, 0)
    x_test, y_test = blobs(200, 1)
    metrics, predicted = fit_and_score(x, y, x_test, y_test, 5, implementation=implementation, **SVM)
    confusion = classify.confusion(y_test, predicted, 5)
    assert confusion.shape == (5, 5) and confusion.sum() == 200 and confusion[4].sum() == 0
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / 200)
    assert 0.5 < metrics["accuracy"] <= 1.0
    assert metrics["accuracy_ci_low"] < metrics["accuracy"] <= metrics["accuracy_ci_high"]
    assert (metrics["n_train"], metrics["n_test"], metrics["n_features"]) == (400, 200, 8)
    assert metrics["fit_seconds"] >= 0 and metrics["predict_seconds"] >= 0


def test_sklearnex_agrees_with_libsvm():
    x, y = blobs(1500, 0)
    x_test, y_test = blobs(1000, 1)
    exact, _ = fit_and_score(x, y, x_test, y_test, 4, implementation="sklearn", **SVM)
    fast, _ = fit_and_score(x, y, x_test, y_test, 4, implementation="sklearnex", **SVM)
    assert abs(exact["accuracy"] - fast["accuracy"]) <= 0.002


def test_scaling_is_a_pipeline_step():
    model = make_svm("rbf", 1.0, "scale", scale=True, implementation="sklearn")
    assert [name for name, _ in model.steps] == ["standardscaler", "svc"]


def test_resolve_jobs():
    from stages.common.evaluation.classify import resolve_jobs

    assert resolve_jobs(1) == 1 and resolve_jobs(3) == 3
    assert resolve_jobs(-1) >= 1
