"""Stage `baselines@<features>`: the same SVM on raw pixels and on PCA, to put the latents in context.

Usage: python -m stages baselines pixels|pca

`pixels` scores the SVM on the 784 raw pixels scaled to [0, 1]; `pca` on a PCA
projection with train.latent_dim components, fitted on the training images. Both
train on at most baselines.train_limit images (class-balanced). Writes
metrics/svm_<features>.json (the latent SVMs' result keys), metrics/run/svm_<features>.json
and data/predictions/<features>.npz.
"""
from __future__ import annotations

import time

import numpy as np

from stages.common.data.sampling import balanced_indices
from stages.common.errors import PipelineError
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import metrics_path, predictions_path, run_path
from stages.common.outputs.read import load_prepared
from stages.common.outputs.usage import peak_rss_mb
from stages.common.settings import as_kwargs, read

FEATURES = ("pixels", "pca")


def pixel_features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


PARAMS = ("seed", "svm", "baselines", "train.latent_dim")


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in FEATURES:
        raise PipelineError(f"usage: python -m stages baselines <features>, features one of {', '.join(FEATURES)}")
    features = argv[0]
    params = read(PARAMS)
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
        from sklearn.decomposition import PCA

        n_components = min(params["train.latent_dim"], *x_train.shape)
        started = time.perf_counter()
        pca = PCA(n_components=n_components, random_state=params["seed"]).fit(x_train)
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
        extra.update(pca_components=n_components, pca_seconds=round(time.perf_counter() - started, 3),
                     pca_explained_variance=round(float(pca.explained_variance_ratio_.sum()), 6))

    from stages.common.evaluation.classify import fit_and_score, split_metrics

    metrics, predicted = fit_and_score(x_train, y_train, x_test, y_test, len(train["class_names"]),
                                       **as_kwargs(params["svm"]))
    results, facts = split_metrics(metrics)
    outputs.json(metrics_path("svm", features), results)
    outputs.json(run_path("svm", features), {**facts, **extra, "peak_rss_mb": peak_rss_mb()})
    outputs.npz(predictions_path(features), predicted=predicted.astype(np.uint8), y_test=y_test)
    outputs.commit()
    print(f"baselines {features}: accuracy {metrics['accuracy']:.4f} on {metrics['n_train']} train images "
          f"(fit {metrics['fit_seconds']:.1f} s, predict {metrics['predict_seconds']:.1f} s)")

