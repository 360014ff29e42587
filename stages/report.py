"""Stage `report`: one page comparing every architecture in `archs`, from the metrics and plots of the run.

Writes plots/report.md, the comparison figures plots/compare/{loss,reconstructions,tsne}.png
and the data of the two interactive charts of `dvc plots show`: plots/compare/loss.csv
(one colour per architecture, train and test told apart) and plots/compare/tsne.csv
(one panel per architecture, coloured by class).
"""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd

from stages.common.data.datasets import DATASETS
from stages.common.errors import PipelineError
from stages.common.evaluation.metrics import BASELINES, METRIC, METRICS, in_range
from stages.common.evaluation.tables import baseline_tests, loss_rows, markdown
from stages.common.models.catalogue import CATALOGUE, display_name
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.charts import image_stack, loss_curves, tsne_scatter
from stages.common.outputs.layout import PLOTS_DIR, metrics_path, plot_path, predictions_path, run_path
from stages.common.outputs.read import (
    check_numbers,
    damaged,
    load_predictions,
    picture_size,
    read_csv,
    read_json,
)
from stages.common.settings import read

# What the page reads from each kind of metrics file: a finite number at each key, checked when read:
# every metric of the kind, and the figures printed beside them.
BESIDE = {"train": ("train_loss", "test_mse_se"), "tsne": (),
          "svm": ("accuracy_ci_low", "accuracy_ci_high", "macro_f1")}
RESULTS = {kind: (*(m.key for m in METRICS if m.kind == kind), *beside) for kind, beside in BESIDE.items()}
FACTS = {
    "train": ("params_encoder", "params_decoder", "params_total", "epochs", "steps", "n_train", "n_test",
              "seconds_per_epoch", "seconds"),
    "latents": ("seconds",),
    "tsne": ("n_points", "seconds"),
    "svm": ("n_train", "n_features", "fit_seconds", "predict_seconds"),
}
# A baseline's facts, when it ran (a disabled one records only that it did not).
BASELINE_FACTS = ("n_train", "n_features")
COMPARE = PLOTS_DIR / "compare"


def tsne_comparison(points: dict):
    import matplotlib.pyplot as plt

    archs = list(points)
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs) + 1.5, 4.4), squeeze=False)
    for i, arch in enumerate(archs):
        frame = points[arch]
        names = frame.drop_duplicates("label").sort_values("label")
        class_names = dict(zip(names["label"], names["class"]))
        full_names = [class_names.get(c, str(c)) for c in range(int(frame["label"].max()) + 1)]
        tsne_scatter(axes[0][i], frame[["x", "y"]].to_numpy(), frame["label"].to_numpy(), full_names,
                     display_name(arch), legend=i == len(archs) - 1)
    fig.tight_layout()
    return fig


PARAMS = ("archs", "data.dataset", "statistics")


def baseline_stage(name: str) -> str:
    return f"baseline_{name}"


def check_range(values: dict, metric, path, stage: str) -> None:
    """A metric read back is a number its metric can take (an accuracy of 1.5 is no result to print)."""
    if not in_range(metric, values[metric.key]):
        low, high = metric.bounds
        raise damaged(path, stage, f"holds {metric.key} = {values[metric.key]!r}, outside {low:g} to {high:g}")


def load_baselines() -> dict:
    """name -> (results, facts) of each baseline's metrics files; a disabled one records only that."""
    baselines = {}
    for name in BASELINES:
        stage = baseline_stage(name)
        base_facts = read_json(run_path("svm", name), stage)
        enabled = base_facts.get("enabled") is True
        if enabled:
            check_numbers(base_facts, run_path("svm", name), stage, BASELINE_FACTS)
        results = read_json(metrics_path("svm", name), stage, RESULTS["svm"] if enabled else ())
        if enabled:
            check_range(results, METRIC["accuracy"], metrics_path("svm", name), stage)
        baselines[name] = (results, base_facts)
    return baselines


def load_predictions_of(archs: list, enabled: list) -> dict:
    stages = {**{a: f"svm@{a}" for a in archs}, **{name: baseline_stage(name) for name in enabled}}
    predictions = {name: load_predictions(predictions_path(name), stage) for name, stage in stages.items()}
    if len({len(p["y_test"]) for p in predictions.values()}) > 1:
        raise PipelineError("data/predictions/: the SVMs were scored on different test sets; "
                            "rerun them: dvc repro svm " + " ".join(map(baseline_stage, enabled)))
    return predictions


def load_tsne_points(arch: str, dataset: str):
    """plots/tsne/<arch>.csv, its classes checked against the dataset's: they reach a page's <script> block."""
    path = plot_path("tsne", arch, "csv")
    frame = read_csv(path, f"tsne@{arch}", numeric=("x", "y", "label"), text=("class",))
    names = DATASETS[dataset].class_names
    labels = frame["label"].to_numpy()
    if not (np.isin(labels, np.arange(len(names))).all()
            and all(names[int(label)] == name for label, name in zip(labels, frame["class"]))):
        raise damaged(path, f"tsne@{arch}", f"holds labels or class names that are not {dataset}'s")
    return frame


def reconstruction_pictures(archs: list) -> list:
    images = []
    for a in archs:
        picture_size(plot_path("reconstructions", a), f"train@{a}")  # before decoding it
        try:
            images.append(matplotlib.image.imread(plot_path("reconstructions", a)))
        except (OSError, ValueError, SyntaxError):
            raise PipelineError(f"{plot_path('reconstructions', a)}: missing or damaged; "
                                f"rerun its stage: dvc repro -f train@{a}") from None
    return images


def main(argv: list[str]) -> None:
    params = read(PARAMS, catalogue=CATALOGUE)
    archs, dataset, statistics = params["archs"], params["data.dataset"], params["statistics"]
    outputs = OutputSet([PLOTS_DIR / "report.md", COMPARE / "loss.csv", COMPARE / "tsne.csv", COMPARE / "loss.png",
                         COMPARE / "reconstructions.png", COMPARE / "tsne.png"])
    results = {kind: {a: read_json(metrics_path(kind, a), f"{kind}@{a}", keys) for a in archs}
               for kind, keys in RESULTS.items()}
    for metric in METRICS:
        for a in archs:
            check_range(results[metric.kind][a], metric, metrics_path(metric.kind, a), f"{metric.kind}@{a}")
    facts = {kind: {a: read_json(run_path(kind, a), f"{kind}@{a}", keys) for a in archs}
             for kind, keys in FACTS.items()}
    baselines = load_baselines()
    enabled = [name for name in BASELINES if baselines[name][1].get("enabled")]
    tests = baseline_tests(archs, load_predictions_of(archs, enabled), enabled, statistics.alpha)
    histories = {a: read_csv(plot_path("loss", a, "csv"), f"train@{a}", numeric=("epoch", "train_mse", "test_mse"))
                 for a in archs}
    points = {a: load_tsne_points(a, dataset) for a in archs}

    outputs.text(COMPARE / "loss.csv", pd.DataFrame(loss_rows(histories)).to_csv(index=False))
    outputs.text(COMPARE / "tsne.csv", pd.concat(
        # `order` keeps the panels in the order of `archs`, not alphabetical.
        [frame.assign(architecture=display_name(a), order=i) for i, (a, frame) in enumerate(points.items())]
    ).to_csv(index=False))
    outputs.figure(COMPARE / "loss.png", loss_curves({display_name(a): h for a, h in histories.items()}))
    outputs.figure(COMPARE / "reconstructions.png", image_stack(reconstruction_pictures(archs)))
    outputs.figure(COMPARE / "tsne.png", tsne_comparison(points))
    outputs.text(PLOTS_DIR / "report.md", markdown(archs, dataset, results, facts, baselines, tests,
                                                   statistics.confidence, statistics.alpha))
    outputs.commit()
    print(f"report: {PLOTS_DIR / 'report.md'}")


if __name__ == "__main__":  # the old entry point, `python -m stages.report`
    from stages import run_as_module

    run_as_module("report")
