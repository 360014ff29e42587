"""Stage `report`: one page comparing every architecture in `archs`, from the metrics and plots of the run.

Writes plots/report.md, the comparison figures plots/compare/{loss,reconstructions,tsne}.png
and the data of the two interactive charts of `dvc plots show`: plots/compare/loss.csv
(one colour per architecture, train and test told apart) and plots/compare/tsne.csv
(one panel per architecture, coloured by class).
"""
from __future__ import annotations

import matplotlib.image
import pandas as pd

from stages.common.errors import PipelineError
from stages.common.evaluation.tables import BASELINES, baseline_tests, loss_rows, markdown
from stages.common.models.catalogue import CATALOGUE, display_name
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.charts import image_stack, loss_curves, tsne_scatter
from stages.common.outputs.layout import PLOTS_DIR, metrics_path, plot_path, predictions_path, run_path
from stages.common.outputs.read import check_numbers, load_predictions, picture_size, read_csv, read_json
from stages.common.settings import read

# What the page reads from each kind of metrics file: a finite number at each key, checked when read.
RESULTS = {
    "train": ("train_loss", "test_mse", "test_mse_se", "denoise_mse"),
    "tsne": ("trustworthiness",),
    "svm": ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1"),
}
FACTS = {
    "train": ("params_encoder", "params_decoder", "params_total", "epochs", "n_train", "n_test",
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


PARAMS = ("archs", "data.dataset")


def main(argv: list[str]) -> None:
    params = read(PARAMS, catalogue=CATALOGUE)
    archs = params["archs"]
    outputs = OutputSet([PLOTS_DIR / "report.md", COMPARE / "loss.csv", COMPARE / "tsne.csv", COMPARE / "loss.png",
                         COMPARE / "reconstructions.png", COMPARE / "tsne.png"])
    results = {kind: {a: read_json(metrics_path(kind, a), f"{kind}@{a}", keys) for a in archs}
               for kind, keys in RESULTS.items()}
    facts = {kind: {a: read_json(run_path(kind, a), f"{kind}@{a}", keys) for a in archs}
             for kind, keys in FACTS.items()}
    baselines = {}
    for name, _ in BASELINES:
        stage = f"baselines@{name}"
        base_facts = read_json(run_path("svm", name), stage)
        enabled = base_facts.get("enabled") is True
        if enabled:
            check_numbers(base_facts, run_path("svm", name), stage, BASELINE_FACTS)
        baselines[name] = (read_json(metrics_path("svm", name), stage, RESULTS["svm"] if enabled else ()), base_facts)
    enabled = [name for name, _ in BASELINES if baselines[name][1].get("enabled")]
    stages = {**{a: f"svm@{a}" for a in archs}, **{name: f"baselines@{name}" for name in enabled}}
    predictions = {name: load_predictions(predictions_path(name), stage) for name, stage in stages.items()}
    if len({len(p["y_test"]) for p in predictions.values()}) > 1:
        raise PipelineError("data/predictions/: the SVMs were scored on different test sets; "
                            "rerun them: dvc repro svm baselines")
    tests = baseline_tests(archs, predictions, enabled)
    histories = {a: read_csv(plot_path("loss", a, "csv"), f"train@{a}", numeric=("epoch", "train_mse", "test_mse"))
                 for a in archs}
    points = {a: read_csv(plot_path("tsne", a, "csv"), f"tsne@{a}", numeric=("x", "y", "label"), text=("class",))
              for a in archs}

    outputs.text(COMPARE / "loss.csv", pd.DataFrame(loss_rows(histories)).to_csv(index=False))
    outputs.text(COMPARE / "tsne.csv", pd.concat(
        # `order` keeps the panels in the order of `archs`, not alphabetical.
        [frame.assign(architecture=display_name(a), order=i) for i, (a, frame) in enumerate(points.items())]
    ).to_csv(index=False))
    outputs.figure(COMPARE / "loss.png", loss_curves({display_name(a): h for a, h in histories.items()}))
    images = []
    for a in archs:
        picture_size(plot_path("reconstructions", a), f"train@{a}")  # before decoding it
        try:
            images.append(matplotlib.image.imread(plot_path("reconstructions", a)))
        except (OSError, ValueError, SyntaxError):
            raise PipelineError(f"{plot_path('reconstructions', a)}: missing or damaged; "
                                f"rerun its stage: dvc repro -f train@{a}") from None
    outputs.figure(COMPARE / "reconstructions.png", image_stack(images))
    outputs.figure(COMPARE / "tsne.png", tsne_comparison(points))
    outputs.text(PLOTS_DIR / "report.md", markdown(archs, params["data.dataset"], results, facts, baselines, tests))
    outputs.commit()
    print(f"report: {PLOTS_DIR / 'report.md'}")

