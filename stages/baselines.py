"""Stages `baseline_pixels` and `baseline_pca`: the same SVM on raw pixels and on PCA, to put the latents in context.

Usage: python -m stages baselines pixels|pca

`pixels` scores the SVM on the 784 raw pixels scaled to [0, 1]; `pca` on a PCA
projection with train.latent_dim components, fitted on the training images (its
solver's random state is `seed`). Both train on at most baselines.train_limit
images (class-balanced). Writes metrics/svm_<features>.json (the latent SVMs'
result keys), metrics/run/svm_<features>.json and data/predictions/<features>.npz.

They are two DVC stages, not one matrix, because they read different params: the
pixels SVM uses neither `seed` nor `train.latent_dim`, so a grid over seeds and
latent sizes restores it from the run-cache instead of fitting it again per cell.
"""
from __future__ import annotations

import time

import numpy as np

from stages.common.data.sampling import balanced_indices
from stages.common.errors import PipelineError
from stages.common.evaluation.metrics import BASELINES
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import metrics_path, predictions_path, run_path
from stages.common.outputs.read import load_prepared
from stages.common.outputs.usage import usage
from stages.common.settings import as_kwargs, read


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


# Per feature space: the keys it reads (each its own DVC stage, baseline_<features>).
PARAMS = {
    "pixels": ("svm", "baselines", "statistics.confidence"),
    "pca": ("seed", "svm", "baselines", "statistics.confidence", "train.latent_dim"),
}


def pca_features(x_train: np.ndarray, x_test: np.ndarray, latent_dim: int, seed: int) -> tuple:
    """(x_train, x_test) projected on the first `latent_dim` principal components of x_train, and facts.

    On one BLAS thread: the covariance is a sum over images that a threaded BLAS may
    split by thread, and the components must not depend on the machine's cores.
    """
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    n_components = min(latent_dim, *x_train.shape)
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        pca = PCA(n_components=n_components, random_state=seed).fit(x_train)
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
    facts = {"pca_components": n_components, "pca_seconds": round(time.perf_counter() - started, 3),
             "pca_explained_variance": round(float(pca.explained_variance_ratio_.sum()), 6)}
    return x_train, x_test, facts


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in BASELINES:
        raise PipelineError(f"usage: python -m stages baselines <features>, features one of {', '.join(BASELINES)}; "
                            f"got {argv}")
    features = argv[0]
    params = read(PARAMS[features])
    baselines = params["baselines"]
    outputs = OutputSet([metrics_path("svm", features), run_path("svm", features), predictions_path(features)])
    if not baselines.enabled:
        outputs.json(metrics_path("svm", features), {})
        outputs.json(run_path("svm", features), {"enabled": False})
        outputs.npz(predictions_path(features), predicted=np.zeros(0, np.uint8), y_test=np.zeros(0, np.uint8))
        outputs.commit()
        print(f"baselines {features}: disabled (baselines.enabled is false)")
        return

    train, test = load_prepared("train"), load_prepared("test")
    keep = balanced_indices(train["labels"], baselines.train_limit)
    x_train, y_train = pixel_features(train["images"][keep]), train["labels"][keep]
    x_test, y_test = pixel_features(test["images"]), test["labels"]
    if len(np.unique(y_train)) < 2:
        raise PipelineError(f"data/prepared/train.npz: the baseline's training images hold only class {y_train[0]}; "
                            "an SVM needs at least two classes")
    extra = {"enabled": True}
    if features == "pca":
        x_train, x_test, facts = pca_features(x_train, x_test, params["train.latent_dim"], params["seed"])
        extra.update(facts)

    from stages.common.evaluation.classify import fit_and_score, split_metrics

    metrics, predicted = fit_and_score(x_train, y_train, x_test, y_test, len(train["class_names"]),
                                       **as_kwargs(params["svm"]), confidence=params["statistics.confidence"])
    results, facts = split_metrics(metrics)
    outputs.json(metrics_path("svm", features), results)
    outputs.json(run_path("svm", features), {**facts, **extra, **usage()})
    outputs.npz(predictions_path(features), predicted=predicted.astype(np.uint8), y_test=y_test)
    outputs.commit()
    print(f"baselines {features}: accuracy {metrics['accuracy']:.4f} on {metrics['n_train']} train images "
          f"(fit {metrics['fit_seconds']:.1f} s, predict {metrics['predict_seconds']:.1f} s)")


if __name__ == "__main__":  # the old entry point, `python -m stages.baselines`
    from stages import run_as_module

    run_as_module("baselines")
