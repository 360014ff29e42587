"""Matplotlib figures of the pipeline: reconstructions, t-SNE scatter, confusion matrix, comparisons.

Functions return a Figure; the stage hands it to its `OutputSet.figure`.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Fixed so that plots are byte-identical between runs and machines with other settings.
plt.rcParams.update({"font.family": "DejaVu Sans", "svg.hashsalt": "ae-compare", "figure.max_open_warning": 0})

# Vega's tableau10, which the interactive charts of `dvc plots show` use (.dvc/plots/):
# the i-th architecture of `archs` has the same colour in every chart and picture.
SERIES_COLOURS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
                  "#9d755d", "#bab0ac")


def series_colour(index: int) -> str:
    """The colour of the index-th series (architecture, in `archs` order)."""
    return SERIES_COLOURS[index % len(SERIES_COLOURS)]


def image_grid(rows: list, row_labels: list, title: str, column_labels: list | None = None):
    """A grid of 28x28 images in [0, 1]: `rows` is a list of (n, 28, 28) arrays, one per row."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    # Room on the left for horizontal row labels as long as "T-shirt/top → Ankle boot".
    label_width = 0.075 * max((len(label) for label in row_labels), default=0)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 0.9 + 0.4 + label_width, n_rows * 0.95 + 0.6),
                             squeeze=False)
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_labels[r]:
            axes[r][0].set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    for c, label in enumerate(column_labels or []):
        axes[0][c].set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tsne_scatter(ax, xy: np.ndarray, labels: np.ndarray, class_names, title: str, legend: bool = True) -> None:
    cmap = plt.get_cmap("tab10")
    for cls, name in enumerate(class_names):
        mask = labels == cls
        ax.scatter(xy[mask, 0], xy[mask, 1], s=12, color=cmap(cls % 10), label=name, alpha=0.85, linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def tsne_figure(xy: np.ndarray, labels: np.ndarray, class_names, title: str):
    fig, ax = plt.subplots(figsize=(6.5, 5))
    tsne_scatter(ax, xy, labels, class_names, title)
    fig.tight_layout()
    return fig


def confusion_figure(matrix: np.ndarray, class_names, title: str):
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict):
    """`histories`: display name -> DataFrame-like with epoch, train_mse, test_mse columns."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (name, history) in enumerate(histories.items()):
        axes[0].plot(history["epoch"], history["train_mse"], marker="o", label=name, color=series_colour(i))
        axes[1].plot(history["epoch"], history["test_mse"], marker="o", label=name, color=series_colour(i),
                     linestyle="--")
    for ax, title in zip(axes, ("training MSE per pixel (mean over the epoch's batches)", "test MSE per pixel")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_stack(images: list):
    """Stack already-rendered images (H x W x C arrays, each titled itself) vertically."""
    fig, axes = plt.subplots(len(images), 1, figsize=(10, 2.4 * len(images)), squeeze=False)
    for ax, image in zip(axes[:, 0], images):
        ax.imshow(image)
        ax.axis("off")
    fig.tight_layout()
    return fig
