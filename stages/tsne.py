"""Stage `tsne@<arch>`: embed test latents in 2-D with t-SNE and measure its trustworthiness.

Usage: python -m stages tsne <arch>

Takes the first tsne.per_class test images of each class (in test-set order, as the
reference notebook did; null takes the whole test split). Writes plots/tsne/<arch>.png,
plots/tsne/<arch>.csv (x, y, label, class), metrics/tsne_<arch>.json and
metrics/run/tsne_<arch>.json.
"""
from __future__ import annotations

import csv
import io
import time

import numpy as np

from stages.common.data.sampling import first_per_class
from stages.common.errors import PipelineError
from stages.common.models.catalogue import display_name, parse_arch
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import latents_path, metrics_path, plot_path, run_path
from stages.common.outputs.read import load_latents
from stages.common.outputs.usage import usage
from stages.common.settings import read


def points_csv(xy: np.ndarray, labels: np.ndarray, class_names) -> str:
    """x, y, label, class: one row per point, the class name quoted where CSV needs it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["x", "y", "label", "class"])
    writer.writerows([f"{x:.5f}", f"{y:.5f}", label, class_names[label]] for (x, y), label in zip(xy, labels))
    return text.getvalue()


PARAMS = ("seed", "tsne")


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "tsne")
    params = read(PARAMS)
    tsne = params["tsne"]
    outputs = OutputSet([plot_path("tsne", arch), plot_path("tsne", arch, "csv"), metrics_path("tsne", arch),
                         run_path("tsne", arch)])
    latents = load_latents(latents_path(arch), arch)
    z_test, y_test = latents["z_test"], latents["y_test"]
    class_names = list(latents["class_names"])

    picked = first_per_class(y_test, tsne.per_class)
    if tsne.perplexity >= len(picked):
        raise PipelineError(f"params.yaml: tsne.perplexity is {tsne.perplexity}; "
                            f"expected a number below the {len(picked)} t-SNE points")
    from stages.common.evaluation.embedding import TRUSTWORTHINESS_K, embedding_trustworthiness, tsne_2d

    points, labels = z_test[picked], y_test[picked]
    if len(np.unique(points, axis=0)) < 2:
        # t-SNE on identical points divides by zero inside scikit-learn's compiled code and crashes the process.
        raise PipelineError(f"{latents_path(arch)}: the {len(points)} test latents picked for t-SNE are all the "
                            f"same (a collapsed model); retrain it: dvc repro -f train@{arch}")
    started = time.perf_counter()
    xy = tsne_2d(points, tsne.perplexity, tsne.max_iter, params["seed"])
    seconds = time.perf_counter() - started
    trust = embedding_trustworthiness(points, xy)

    from stages.common.outputs.charts import tsne_figure

    title = f"{display_name(arch)}: t-SNE of {len(picked)} test latents (trustworthiness {trust:.3f})"
    outputs.figure(plot_path("tsne", arch), tsne_figure(xy, labels, class_names, title))
    outputs.text(plot_path("tsne", arch, "csv"), points_csv(xy, labels, class_names))
    outputs.json(metrics_path("tsne", arch), {"trustworthiness": round(trust, 6)})
    outputs.json(run_path("tsne", arch), {
        "trustworthiness_k": TRUSTWORTHINESS_K,
        "n_points": int(len(picked)),
        "seconds": round(seconds, 3),
        **usage(),
    })
    outputs.commit()
    print(f"tsne {arch}: {len(picked)} points, trustworthiness {trust:.4f}, {seconds:.1f} s")


if __name__ == "__main__":  # the old entry point, `python -m stages.tsne`
    from stages import run_as_module

    run_as_module("tsne")
