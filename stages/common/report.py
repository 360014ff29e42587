"""Building the comparison report (markdown tables and a summary) from the metrics of a run.

Pure functions over already-loaded metrics dicts, so they are testable on made-up data.
"""
from __future__ import annotations

from stages.common.params import ARCH_NAMES

# What the reference notebook printed (MNIST 60,000/10,000, one CUDA GPU).
REFERENCE_MNIST = {
    "superres": {"train_loss": 0.008047, "test_mse": 0.007407},
    "conv": {"train_loss": 0.002153, "test_mse": 0.002096, "svm_accuracy": 0.9878},
    "stacked": {"train_loss": 0.015532, "test_mse": 0.014568},
}


def _fmt(value, spec: str = ".6f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def ranks(values: dict) -> dict:
    """1 for the smallest value, 2 for the next, ... (ties share the better rank)."""
    ordered = sorted(values.values())
    return {key: ordered.index(value) + 1 for key, value in values.items()}


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def summary(archs: list, metrics: dict) -> dict:
    """One number per architecture for each headline metric (metrics/summary.json)."""
    return {
        arch: {
            "test_mse": metrics["train"][arch]["test_mse"],
            "svm_accuracy": metrics["svm"][arch]["accuracy"],
            "trustworthiness": metrics["tsne"][arch]["trustworthiness"],
        }
        for arch in archs
    }


def markdown(archs: list, dataset: str, metrics: dict, baselines: dict) -> str:
    """The report page. `metrics[kind][arch]` for kind in train, latents, tsne, svm;
    `baselines[name]` for pixels and pca (a dict with enabled false when skipped)."""
    train, tsne, svm, latents = metrics["train"], metrics["tsne"], metrics["svm"], metrics["latents"]
    first = train[archs[0]]
    mse_rank = ranks({arch: train[arch]["test_mse"] for arch in archs})
    out = [
        "# Autoencoder comparison report",
        "",
        f"Dataset **{dataset}**: {first['n_train']:,} training / {first['n_test']:,} test images, "
        f"{first['epochs']} epochs, {first['precision']} on {first['device']}.",
        "Reference figures are what the notebook printed for **MNIST** (60,000/10,000); "
        "they are comparable only when this run is MNIST at full size.",
        "",
        "## Reconstruction",
        "",
        table(
            ["architecture", "final train loss", "test MSE", "rank", "reference train loss (MNIST)",
             "reference test MSE (MNIST)"],
            [[ARCH_NAMES[a], _fmt(train[a]["train_loss"]), _fmt(train[a]["test_mse"]), mse_rank[a],
              _fmt(REFERENCE_MNIST[a]["train_loss"]), _fmt(REFERENCE_MNIST[a]["test_mse"])] for a in archs],
        ),
        "",
        "![loss curves](compare_loss.png)",
        "",
        "![reconstructions](compare_reconstructions.png)",
        "",
        "## Latent space",
        "",
    ]
    svm_rows = [[f"{ARCH_NAMES[a]} latents", _fmt(svm[a]["accuracy"] * 100, ".2f"), _fmt(svm[a]["macro_f1"], ".4f"),
                 f"{svm[a]['n_train']:,}", svm[a]["n_features"], _fmt(svm[a]["fit_seconds"], ".1f"),
                 _fmt(svm[a]["predict_seconds"], ".1f")] for a in archs]
    for name, label in (("pixels", "raw pixels (baseline)"), ("pca", "PCA (baseline)")):
        base = baselines.get(name) or {}
        if base.get("enabled"):
            svm_rows.append([label, _fmt(base["accuracy"] * 100, ".2f"), _fmt(base["macro_f1"], ".4f"),
                             f"{base['n_train']:,}", base["n_features"], _fmt(base["fit_seconds"], ".1f"),
                             _fmt(base["predict_seconds"], ".1f")])
        else:
            svm_rows.append([label, "not run (baselines.enabled: false)", "–", "–", "–", "–", "–"])
    out += [
        table(["features", "SVM test accuracy %", "macro F1", "train images", "dims", "fit s", "predict s"], svm_rows),
        "",
        f"Reference: the notebook's SVM on Convolutional AE latents scored "
        f"{REFERENCE_MNIST['conv']['svm_accuracy'] * 100:.2f}% on MNIST.",
        "",
        table(["architecture", "t-SNE trustworthiness (k=5)", "points"],
              [[ARCH_NAMES[a], _fmt(tsne[a]["trustworthiness"], ".4f"), tsne[a]["n_points"]] for a in archs]),
        "",
        "![t-SNE](compare_tsne.png)",
        "",
        "## Model size and time",
        "",
        table(
            ["architecture", "encoder params", "decoder params", "total params", "s/epoch", "train s", "latents s",
             "t-SNE s", "SVM s"],
            [[ARCH_NAMES[a], f"{train[a]['params_encoder']:,}", f"{train[a]['params_decoder']:,}",
              f"{train[a]['params_total']:,}", _fmt(train[a]["seconds_per_epoch"], ".1f"),
              _fmt(train[a]["seconds"], ".1f"), _fmt(latents[a]["seconds"], ".1f"), _fmt(tsne[a]["seconds"], ".1f"),
              _fmt(svm[a]["fit_seconds"] + svm[a]["predict_seconds"], ".1f")] for a in archs],
        ),
        "",
    ]
    return "\n".join(out)
