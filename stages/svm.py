"""Stage `svm@<arch>`: how well a kernel SVM separates the classes in an autoencoder's latent space.

Usage: python -m stages svm <arch>

Fits SVC(kernel=svm.kernel, C=svm.C, gamma=svm.gamma) on all train latents, scores
it on all test latents. Writes metrics/svm_<arch>.json (accuracy with its Wilson interval
at statistics.confidence over the test images, macro F1), metrics/run/svm_<arch>.json (sizes, times,
memory), plots/confusion/<arch>.png and data/predictions/<arch>.npz (the predicted
test labels, for the report's paired tests against the baselines).
"""
from __future__ import annotations

import numpy as np

from stages.common.errors import PipelineError
from stages.common.models.catalogue import display_name, parse_arch
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import latents_path, metrics_path, plot_path, predictions_path, run_path
from stages.common.outputs.read import load_latents
from stages.common.outputs.usage import usage
from stages.common.settings import as_kwargs, read

PARAMS = ("svm", "statistics.confidence")


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "svm")
    params = read(PARAMS)
    outputs = OutputSet([metrics_path("svm", arch), run_path("svm", arch), plot_path("confusion", arch),
                         predictions_path(arch)])
    latents = load_latents(latents_path(arch), arch)
    class_names = list(latents["class_names"])
    if len(np.unique(latents["y_train"])) < 2:
        raise PipelineError(f"{latents_path(arch)}: its training labels hold one class; an SVM needs two at least; "
                            "rerun: dvc repro -f prepare")

    from stages.common.evaluation.classify import confusion, fit_and_score, split_metrics

    metrics, predicted = fit_and_score(latents["z_train"], latents["y_train"], latents["z_test"], latents["y_test"],
                                       len(class_names), **as_kwargs(params["svm"]),
                                       confidence=params["statistics.confidence"])
    from stages.common.outputs.charts import confusion_figure

    title = f"{display_name(arch)} latents: SVM accuracy {metrics['accuracy']:.2%}"
    results, facts = split_metrics(metrics)
    matrix = confusion(latents["y_test"], predicted, len(class_names))
    outputs.figure(plot_path("confusion", arch), confusion_figure(matrix, class_names, title))
    outputs.npz(predictions_path(arch), predicted=predicted.astype("uint8"), y_test=latents["y_test"])
    outputs.json(metrics_path("svm", arch), results)
    outputs.json(run_path("svm", arch), {**facts, **usage()})
    outputs.commit()
    print(f"svm {arch}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
          f"(fit {metrics['fit_seconds']:.1f} s, predict {metrics['predict_seconds']:.1f} s)")


if __name__ == "__main__":  # the old entry point, `python -m stages.svm`
    from stages import run_as_module

    run_as_module("svm")
