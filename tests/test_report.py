"""The comparison report, built from small made-up metrics."""
from __future__ import annotations

import pytest

from stages.common.report import markdown, ranks, summary

ARCHS = ["superres", "conv", "stacked"]


def made_up_metrics():
    def train(mse):
        return {"train_loss": mse * 1.1, "test_mse": mse, "params_encoder": 10, "params_decoder": 20,
                "params_total": 30, "epochs": 5, "n_train": 8000, "n_test": 2000, "device": "cpu",
                "precision": "fp32", "seconds_per_epoch": 1.5, "seconds": 7.5}

    def svm(acc):
        return {"accuracy": acc, "macro_f1": acc - 0.01, "n_train": 8000, "n_test": 2000, "n_features": 64,
                "fit_seconds": 1.0, "predict_seconds": 0.5}

    return {
        "train": {"superres": train(0.007), "conv": train(0.002), "stacked": train(0.015)},
        "latents": {arch: {"seconds": 0.4} for arch in ARCHS},
        "tsne": {arch: {"trustworthiness": 0.95, "n_points": 200, "seconds": 0.3} for arch in ARCHS},
        "svm": {"superres": svm(0.97), "conv": svm(0.9878), "stacked": svm(0.96)},
    }


BASELINES = {"pixels": {"enabled": True, "accuracy": 0.9792, "macro_f1": 0.979, "n_train": 8000, "n_features": 784,
                        "fit_seconds": 9.0, "predict_seconds": 3.0},
             "pca": {"enabled": False}}


def test_ranks():
    assert ranks({"a": 0.3, "b": 0.1, "c": 0.2}) == {"a": 3, "b": 1, "c": 2}


def test_every_row_and_figure_present():
    page = markdown(ARCHS, "mnist", made_up_metrics(), BASELINES)
    for name in ("Super-Resolution AE", "Convolutional AE", "Stacked AE"):
        assert page.count(f"| {name} |") == 3  # reconstruction, t-SNE and size/time tables
        assert f"| {name} latents |" in page
    assert "| raw pixels (baseline) | 97.92 |" in page
    assert "| PCA (baseline) | not run (baselines.enabled: false) |" in page
    assert "| Convolutional AE | 0.002200 | 0.002000 | 1 |" in page
    assert "| Stacked AE | 0.016500 | 0.015000 | 3 |" in page
    for image in ("compare_loss.png", "compare_reconstructions.png", "compare_tsne.png"):
        assert f"]({image})" in page
    assert "Dataset **mnist**: 8,000 training / 2,000 test images, 5 epochs" in page


def test_report_follows_the_selected_architectures():
    page = markdown(["conv"], "fashion-mnist", made_up_metrics(), BASELINES)
    assert "Stacked AE" not in page and "Convolutional AE latents" in page


def test_summary_one_number_per_architecture_and_metric():
    result = summary(ARCHS, made_up_metrics())
    assert result["conv"] == {"test_mse": 0.002, "svm_accuracy": 0.9878, "trustworthiness": 0.95}
    assert set(result) == set(ARCHS)


def test_missing_metric_is_a_key_error():
    metrics = made_up_metrics()
    del metrics["svm"]["conv"]
    with pytest.raises(KeyError):
        summary(ARCHS, metrics)
