"""The comparison report, built from small made-up metrics."""
from __future__ import annotations

import pandas as pd

from stages.common.evaluation.tables import loss_rows, markdown, ranks

ARCHS = ["superres", "conv", "stacked", "vae", "denoising"]


def made_up():
    def train(mse, **extra):
        return {"train_loss": mse * 1.1, "test_mse": mse, "denoise_mse": mse * 2, **extra}

    results = {
        "train": {"superres": train(0.007), "conv": train(0.002), "stacked": train(0.015),
                  "vae": train(0.02, kl=25.5, reconstruction=80.25), "denoising": train(0.003)},
        "tsne": {arch: {"trustworthiness": 0.95} for arch in ARCHS},
        "svm": {arch: {"accuracy": 0.97, "macro_f1": 0.96} for arch in ARCHS},
    }
    results["svm"]["conv"] = {"accuracy": 0.9878, "macro_f1": 0.98}
    run_train = {"params_encoder": 10, "params_decoder": 20, "params_total": 30, "epochs": 5, "n_train": 8000,
                 "n_test": 2000, "device": "cpu", "precision": "fp32", "seconds_per_epoch": 1.5, "seconds": 7.5}
    facts = {
        "train": {arch: run_train for arch in ARCHS},
        "latents": {arch: {"seconds": 0.4} for arch in ARCHS},
        "tsne": {arch: {"n_points": 200, "seconds": 0.3} for arch in ARCHS},
        "svm": {arch: {"n_train": 8000, "n_features": 64, "fit_seconds": 1.0, "predict_seconds": 0.5}
                for arch in ARCHS},
    }
    return results, facts


BASELINES = {"pixels": ({"accuracy": 0.9792, "macro_f1": 0.979},
                        {"enabled": True, "n_train": 8000, "n_features": 784}),
             "pca": ({}, {"enabled": False})}


def test_ranks():
    assert ranks({"a": 0.3, "b": 0.1, "c": 0.2}) == {"a": 3, "b": 1, "c": 2}


def test_every_row_and_figure_present():
    results, facts = made_up()
    page = markdown(ARCHS, "mnist", results, facts, BASELINES)
    for name in ("Super-Resolution AE", "Convolutional AE", "Stacked AE", "Variational AE", "Denoising AE"):
        # reconstruction, t-SNE and size/time tables (and the variational terms for the VAE)
        assert page.count(f"| {name} |") == (4 if name == "Variational AE" else 3)
        assert f"| {name} latents |" in page
    assert "| raw pixels (baseline) | 97.92 |" in page
    assert "| PCA (baseline) | not run (baselines.enabled: false) |" in page
    assert "| Convolutional AE | 0.002200 | 0.002000 | 1 | 0.004000 | 0.002153 | 0.002096 |" in page
    assert "| Variational AE | 0.022000 | 0.020000 | 5 | 0.040000 | – | – |" in page  # no reference figures
    assert "| Variational AE | 80.250 | 25.500 |" in page
    for image in ("compare/loss.png", "compare/reconstructions.png", "compare/tsne.png", "samples/vae.png",
                  "denoising/denoising.png", "interpolation/conv.png"):
        assert f"]({image})" in page
    assert "Dataset **mnist**: 8,000 training / 2,000 test images, 5 epochs" in page


def test_report_follows_the_selected_architectures():
    results, facts = made_up()
    page = markdown(["conv"], "fashion-mnist", results, facts, BASELINES)
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
