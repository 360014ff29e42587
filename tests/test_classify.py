"""The SVM scorer: both implementations agree, and prediction repeats exactly, threads or not."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from stages.common.evaluation import classify
from stages.common.evaluation.classify import fit_and_score, make_svm, parallel_predict, predict_reproducibly

SVM = {"kernel": "rbf", "C": 10, "gamma": "scale", "scale": False, "threads": 2, "confidence": 0.95}


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    features = rng.normal(size=(n, 8)) + labels[:, None] * 1.5
    return features.astype(np.float32), labels


def test_threaded_prediction_equals_a_single_call():
    x, y = blobs(400, 0)
    x_test, _ = blobs(3000, 1)
    model = SVC(C=10).fit(x, y)
    np.testing.assert_array_equal(parallel_predict(model, x_test, threads=2), model.predict(x_test))


def latent_like(n: int = 12_000):
    # Some thousands of support vectors in 64 dimensions, like a latent space.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    features = (rng.normal(size=(10, 64))[labels] + 3 * rng.normal(size=(n, 64))).astype(np.float32)
    return features, labels


def test_sklearnex_prediction_repeats_exactly():
    # Here oneDAL's prediction on every core gave 1 to 4 different decision values in 4 calls.
    features, labels = latent_like()
    model = make_svm("rbf", 10, "scale", True, "sklearnex", threads=2).fit(features[:8000], labels[:8000])
    assert len(model[-1].support_) > 5000
    x_test = features[8000:]
    predicted = [predict_reproducibly(model, x_test, "sklearnex", threads=2) for _ in range(3)]
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
    model = make_svm("rbf", 1.0, "scale", True, "sklearn", threads=1)
    assert [name for name, _ in model.steps] == ["standardscaler", "svc"]


# Run in a fresh process: scikit-learn-intelex honours n_jobs only in a main thread, and a pytest-xdist
# worker runs tests in another one (there it falls back to every core, as a stage never does).
ONEDAL_DECISIONS = """
import hashlib, sys
import numpy as np
from threadpoolctl import threadpool_limits
sys.path.insert(0, sys.argv[3])
from stages.common.evaluation.classify import make_svm
from tests.test_classify import latent_like
features, labels = latent_like()
model = make_svm("rbf", 10, "scale", True, "sklearnex", threads=int(sys.argv[1]))
with threadpool_limits(limits=int(sys.argv[2]) or None):  # as OMP_NUM_THREADS, read by oneDAL when n_jobs is unset
    model.fit(features[:6000], labels[:6000])
model[-1].set_params(n_jobs=1)  # oneDAL's threaded prediction sums in a changing order; the fit is what is compared
print(hashlib.sha256(model.decision_function(features[6000:8000]).tobytes()).hexdigest())
"""


def onedal_decisions(threads: int, limit: int = 0) -> str:
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run([sys.executable, "-c", ONEDAL_DECISIONS, str(threads), str(limit), str(ROOT)],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def test_the_onedal_fit_depends_on_its_thread_count_and_on_nothing_else():
    two = onedal_decisions(threads=2)
    # The setting is not cosmetic: one thread solves to another model here.
    assert onedal_decisions(threads=1) != two
    # Given explicitly, the environment's thread limit (a Dask worker's, a sweep cell's) changes nothing.
    assert onedal_decisions(threads=2, limit=1) == two
