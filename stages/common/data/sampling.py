"""Deterministic, class-balanced selection of images: for quick runs and for t-SNE."""
from __future__ import annotations

import numpy as np

from stages.common.errors import PipelineError


def balanced_indices(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of `limit` images with classes as equal as the data allows, in data order.

    Classes take turns (the first image of each class, then the second of each, ...),
    so the result needs no random seed and a larger limit extends a smaller one.
    """
    labels = np.asarray(labels)
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    # Rank of each image within its class, in data order.
    rank = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        rank[members] = np.arange(len(members))
    turn_order = np.lexsort((labels, rank))  # by rank, then class
    return np.sort(turn_order[:limit])


def first_per_class(labels: np.ndarray, per_class: int | None, key: str = "tsne.per_class") -> np.ndarray:
    """Indices of the first `per_class` images of each class, in data order (None: all images).

    Raises PipelineError naming `key` if some class has fewer images than asked for.
    """
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < per_class:
        short = classes[np.argmin(counts)]
        raise PipelineError(
            f"params.yaml: {key} is {per_class}; the test split holds only {counts.min()} images of class {short}"
        )
    picked = [np.flatnonzero(labels == cls)[:per_class] for cls in classes]
    return np.sort(np.concatenate(picked))
