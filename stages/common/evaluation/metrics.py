"""What the comparison measures, said once: every result metric and every baseline feature space.

Each stage writes the metrics of its kind (metrics/<kind>_<name>.json); the
single-run report, the sweep's analysis and report, `make exps` and the tests all
read this table, so adding a metric or a baseline is one entry here (and the stage
that computes it).

A metric with a per-image form is judged over seeds *and* test images (every seed
is scored on the same test set, so both noises count); one without (t-SNE's
trustworthiness, a property of the whole embedding) over seeds only, and every
report says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from stages.common.models.catalogue import display_name


@dataclass(frozen=True)
class Metric:
    key: str                  # its key in metrics/<kind>_<name>.json, and its name in every table
    kind: str                 # the stage kind that writes it: train, svm or tsne
    label: str                # as reports show it
    higher_is_better: bool
    percent: bool             # a share, shown x 100 with a % sign
    bounds: tuple[float, float]  # every value lies here; intervals are kept inside
    # How an interval of its mean stays inside the bounds: "logit" (a share of the range,
    # accuracy) or "log" (a positive error far from its upper bound, an MSE).
    scale: str
    decimals: int             # as reports show it (after the x 100 of a percentage)
    # The per-image outcome behind it: "correct" (an SVM's predictions file) or the key
    # of the architecture's per-image errors file; None: a whole-embedding number.
    per_image: str | None

    def shown(self, value: float) -> float:
        return value * 100 if self.percent else value

    def format(self, value: float | None) -> str:
        return "–" if value is None else f"{self.shown(value):.{self.decimals}f}"


METRICS: tuple[Metric, ...] = (
    Metric("test_mse", "train", "test MSE", False, False, (0.0, 1.0), "log", 6, "test_mse"),
    Metric("denoise_mse", "train", "denoise MSE", False, False, (0.0, 1.0), "log", 6, "denoise_mse"),
    Metric("accuracy", "svm", "SVM accuracy %", True, True, (0.0, 1.0), "logit", 2, "correct"),
    Metric("trustworthiness", "tsne", "t-SNE trustworthiness", True, False, (0.0, 1.0), "logit", 4, None),
)
METRIC = {metric.key: metric for metric in METRICS}

# Feature spaces scored by the same SVM besides the latents, to put them in context
# (stages/baselines.py computes each): id -> label.
BASELINES: dict[str, str] = {"pixels": "raw pixels (baseline)", "pca": "PCA (baseline)"}


def feature_label(name: str) -> str:
    """An architecture's display name, or a baseline's label."""
    return BASELINES.get(name) or display_name(name)


def in_range(metric: Metric, value) -> bool:
    """Whether `value` is a number this metric can take (a bool, NaN or 1e308 is not)."""
    low, high = metric.bounds
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)
