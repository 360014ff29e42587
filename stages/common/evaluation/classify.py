"""Scoring a feature space with a kernel SVM: fit on train features, evaluate on test features.

Two implementations, the same model class and parameters, both on float64 features:
- `sklearn` (default): libsvm itself, as the notebook ran it: the exact reference. It
  fits on one thread, and its prediction is split into row blocks run in `threads`
  threads (libsvm releases the GIL), which gives exactly the labels of one call: its
  result depends on no thread count.
- `sklearnex`: the oneDAL SVC of scikit-learn-intelex, faster on several cores but
  not the same solution: on the MNIST sample's Denoising AE latents it scored up to
  2.8 points below libsvm in float32 and up to 0.5 in float64, on 10,000 Fashion-MNIST
  pixel images 3.1 points below (docs/results.md). It fits in `threads` threads and
  its solution depends on that number (the solver's sums are split by thread: 1 and 2
  threads gave accuracies 4 points apart on one weak latent space), so `threads` is
  passed explicitly: left unset, oneDAL takes OMP_NUM_THREADS or every core, and the
  result would depend on the machine. It predicts on one thread: its threaded
  prediction sums the kernel terms in an order that changes from call to call, and a
  label near a tie flips with it.
Either way the same params give the same labels on any machine with at least
`threads` CPUs (docs/guarantees.md).
"""
from __future__ import annotations

import time

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from stages.common.evaluation.statistics import wilson_interval

# What goes to metrics/ (results); the rest of `fit_and_score`'s metrics are facts for metrics/run/.
RESULT_KEYS = ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1")


def split_metrics(metrics: dict) -> tuple[dict, dict]:
    """(results for metrics/, facts for metrics/run/) of `fit_and_score`'s metrics."""
    results = {key: metrics[key] for key in RESULT_KEYS}
    return results, {key: value for key, value in metrics.items() if key not in RESULT_KEYS}


def make_svm(kernel: str, C: float, gamma, scale: bool, implementation: str, threads: int):
    if implementation == "sklearnex":
        from sklearnex.svm import SVC as FastSVC

        svc = FastSVC(kernel=kernel, C=C, gamma=gamma, n_jobs=threads)
    elif implementation == "sklearn":
        svc = SVC(kernel=kernel, C=C, gamma=gamma)
    else:
        raise ValueError(f"unknown SVM implementation {implementation!r}; known: sklearnex, sklearn")
    return make_pipeline(StandardScaler(), svc) if scale else svc


def predict_reproducibly(model, features: np.ndarray, implementation: str, threads: int) -> np.ndarray:
    """Labels that repeat exactly from call to call, on as many threads as allows that."""
    if implementation == "sklearn":
        return parallel_predict(model, features, threads)
    svc = model[-1] if isinstance(model, Pipeline) else model
    # sklearnex sets oneDAL's thread count for the call and restores it afterwards.
    svc.set_params(n_jobs=1)
    return model.predict(features)


def parallel_predict(model, features: np.ndarray, threads: int) -> np.ndarray:
    """`model.predict` over row blocks in threads; identical to one call, faster on several cores."""
    threads = min(threads, max(1, len(features) // 256))
    if threads == 1:
        return model.predict(features)
    blocks = np.array_split(features, threads)
    parts = Parallel(n_jobs=threads, prefer="threads")(delayed(model.predict)(block) for block in blocks)
    return np.concatenate(parts)


def fit_and_score(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    *,
    kernel: str,
    C: float,
    gamma,
    scale: bool,
    implementation: str,
    threads: int,
    confidence: float,
) -> tuple[dict, np.ndarray]:
    """Fit an SVM and score it; returns (metrics, predicted test labels).

    The accuracy comes with its Wilson interval at `confidence` over the test images.
    The other keyword arguments are exactly the keys of params.yaml's `svm` section.
    """
    model = make_svm(kernel, C, gamma, scale, implementation, threads)
    # float64 for both: oneDAL also takes float32, and then scored up to 2.8 points lower.
    x_train, x_test = np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = predict_reproducibly(model, x_test, implementation, threads)
    predict_seconds = time.perf_counter() - started
    labels = np.arange(n_classes)
    correct = int(np.sum(predicted == y_test))
    ci_low, ci_high = wilson_interval(correct, len(y_test), confidence)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "accuracy_ci_low": round(ci_low, 6),
        "accuracy_ci_high": round(ci_high, 6),
        "macro_f1": round(float(f1_score(y_test, predicted, labels=labels, average="macro", zero_division=0)), 6),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "n_features": int(x_train.shape[1]),
        "fit_seconds": round(fit_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
    }
    return metrics, predicted


def confusion(y_test: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    return confusion_matrix(y_test, predicted, labels=np.arange(n_classes))
