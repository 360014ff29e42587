"""Stage `report`: one page comparing every architecture, from the metrics and plots of the run.

Writes plots/report.md, plots/compare_loss.png, plots/compare_reconstructions.png,
plots/compare_tsne.png and metrics/summary.json.
"""
from __future__ import annotations

import json

import matplotlib.image
import pandas as pd

from stages.common.atomic import save_figure, write_json, write_text
from stages.common.errors import PipelineError, run_stage
from stages.common.figures import image_stack, loss_curves, tsne_scatter
from stages.common.layout import METRICS_DIR, PLOTS_DIR, metrics_path
from stages.common.params import ARCH_NAMES, load_params
from stages.common.report import markdown, summary

KINDS = ("train", "latents", "tsne", "svm")


def read_json(path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path}: missing; run the stages before the report (dvc repro)") from None


def tsne_comparison(archs: list):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(archs), figsize=(5 * len(archs) + 1.5, 4.8), squeeze=False)
    for i, arch in enumerate(archs):
        points = pd.read_csv(PLOTS_DIR / "tsne" / f"{arch}.csv")
        names = points.drop_duplicates("label").sort_values("label")
        class_names = dict(zip(names["label"], names["class"]))
        full_names = [class_names.get(c, str(c)) for c in range(int(points["label"].max()) + 1)]
        tsne_scatter(axes[0][i], points[["x", "y"]].to_numpy(), points["label"].to_numpy(), full_names,
                     ARCH_NAMES[arch], legend=i == len(archs) - 1)
    fig.tight_layout()
    return fig


def main(argv: list[str]) -> None:
    params = load_params()
    archs = params["archs"]
    metrics = {kind: {arch: read_json(metrics_path(kind, arch)) for arch in archs} for kind in KINDS}
    baselines = {name: read_json(metrics_path("svm", name)) for name in ("pixels", "pca")}

    histories = {arch: pd.read_csv(PLOTS_DIR / "loss" / f"{arch}.csv") for arch in archs}
    save_figure(loss_curves(histories, ARCH_NAMES), PLOTS_DIR / "compare_loss.png")
    images = [matplotlib.image.imread(PLOTS_DIR / "reconstructions" / f"{arch}.png") for arch in archs]
    save_figure(image_stack(images), PLOTS_DIR / "compare_reconstructions.png")
    save_figure(tsne_comparison(archs), PLOTS_DIR / "compare_tsne.png")

    write_text(PLOTS_DIR / "report.md", markdown(archs, params["data"]["dataset"], metrics, baselines))
    write_json(METRICS_DIR / "summary.json", summary(archs, metrics))
    print(f"report: {PLOTS_DIR / 'report.md'}")


if __name__ == "__main__":
    run_stage(main)
