"""The comparison report, built from small made-up metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd

from stages.common.evaluation.tables import baseline_tests, loss_rows, markdown

ARCHS = ["superres", "conv", "stacked", "vae", "denoising"]
CONFIDENCE, ALPHA = 0.95, 0.05


def svm(accuracy: float, f1: float) -> dict:
    return {"accuracy": accuracy, "accuracy_ci_low": accuracy - 0.006, "accuracy_ci_high": accuracy + 0.005,
            "macro_f1": f1}


def made_up():
    def train(mse, **extra):
        return {"train_loss": mse * 1.1, "test_mse": mse, "test_mse_se": mse / 100, "denoise_mse": mse * 2, **extra}

    results = {
        "train": {"superres": train(0.007), "conv": train(0.002), "stacked": train(0.015),
                  "vae": train(0.02, kl=25.5, reconstruction=80.25), "denoising": train(0.003)},
        "tsne": {arch: {"trustworthiness": 0.95} for arch in ARCHS},
        "svm": {arch: svm(0.97, 0.96) for arch in ARCHS},
    }
    results["svm"]["conv"] = svm(0.9878, 0.98)
    run_train = {"params_encoder": 10, "params_decoder": 20, "params_total": 30, "epochs": 5, "steps": 315,
                 "n_train": 8000, "n_test": 2000, "device": "cpu", "precision": "fp32", "seconds_per_epoch": 1.5,
                 "seconds": 7.5}
    facts = {
        "train": {arch: run_train for arch in ARCHS},
        "latents": {arch: {"seconds": 0.4} for arch in ARCHS},
        "tsne": {arch: {"n_points": 200, "seconds": 0.3} for arch in ARCHS},
        "svm": {arch: {"n_train": 8000, "n_features": 64, "fit_seconds": 1.0, "predict_seconds": 0.5}
                for arch in ARCHS},
    }
    return results, facts


BASELINES = {"pixels": (svm(0.9792, 0.979),
                        {"enabled": True, "n_train": 8000, "n_features": 784}),
             "pca": ({}, {"enabled": False})}


def predictions(correct: int, n: int = 200) -> dict:
    y = np.arange(n) % 10
    predicted = y.copy()
    predicted[correct:] = (y[correct:] + 1) % 10
    return {"predicted": predicted, "y_test": y}


def test_baseline_tests_are_mcnemar_holm_corrected_with_a_verdict():
    found = {"conv": predictions(200), "stacked": predictions(150), "vae": predictions(182), "pixels": predictions(180)}
    rows = baseline_tests(["conv", "stacked", "vae"], found, ["pixels"], ALPHA)
    verdicts = {r["arch"]: r["verdict"] for r in rows}
    assert verdicts == {"conv": "latents better", "stacked": "baseline better", "vae": "no significant difference"}
    conv = rows[0]
    assert (conv["only_latents"], conv["only_baseline"]) == (20, 0)
    assert conv["p_holm"] == min(1.0, 2 * conv["p"])  # the second smallest of three p-values, times 2
    assert baseline_tests(["conv"], found, [], ALPHA) == []
    # The level is the caller's: at 1e-9 not even 20 images against none separate two classifiers.
    strict = {r["arch"]: r["verdict"] for r in baseline_tests(["conv", "stacked", "vae"], found, ["pixels"], 1e-9)}
    assert strict["conv"] == "no significant difference"


def test_every_row_and_figure_present():
    results, facts = made_up()
    tests = baseline_tests(ARCHS, {name: predictions(190) for name in [*ARCHS, "pixels"]}, ["pixels"], ALPHA)
    page = markdown(ARCHS, "mnist", results, facts, BASELINES, tests, CONFIDENCE, ALPHA)
    for name in ("Super-Resolution AE", "Convolutional AE", "Stacked AE", "Variational AE", "Denoising AE"):
        # reconstruction, McNemar, t-SNE and size/time tables (and the variational terms for the VAE)
        assert page.count(f"| {name} |") == (5 if name == "Variational AE" else 4)
        assert f"| {name} latents |" in page
    assert "| raw pixels (baseline) | 97.92 | 97.32–98.42 |" in page
    assert "| PCA (baseline) | not run (baselines.enabled: false) |" in page
    assert "| Convolutional AE | 0.002200 | 0.002000 ± 0.000020 | 0.004000 | 0.002153 | 0.002096 |" in page
    assert "| Variational AE | 0.022000 | 0.020000 ± 0.000200 | 0.040000 | – | – |" in page  # no reference figures
    assert "| Convolutional AE | raw pixels (baseline) | 0 | 0 | 1 | 1 | no significant difference |" in page
    assert "rank" not in page and "best" not in page and "| **" not in page  # no winner named or bolded
    assert "| Variational AE | 80.250 | 25.500 |" in page
    for image in ("compare/loss.png", "compare/reconstructions.png", "compare/tsne.png", "samples/vae.png",
                  "denoising/denoising.png", "interpolation/conv.png"):
        assert f"]({image})" in page
    assert "Dataset **mnist**: 8,000 training / 2,000 test images, 5 epochs (315 optimizer steps)" in page


def test_report_follows_the_selected_architectures():
    results, facts = made_up()
    page = markdown(["conv"], "fashion-mnist", results, facts, BASELINES, [], CONFIDENCE, ALPHA)
    assert "Stacked AE" not in page and "Convolutional AE latents" in page
    assert "Variational terms" not in page


def test_loss_rows_one_colour_per_architecture_train_and_test_apart():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [9.0, 8.0], "train_mse": [0.3, 0.2],
                            "test_mse": [0.25, 0.15]})
    rows = loss_rows({"conv": history, "vae": history})
    assert len(rows) == 8
    assert {(r["architecture"], r["split"]) for r in rows} == {
        ("Convolutional AE", "train"), ("Convolutional AE", "test"), ("Variational AE", "train"),
        ("Variational AE", "test")}
    assert {"epoch": 2, "architecture": "Variational AE", "split": "test", "mse": 0.15} in rows
