"""Stage `prepare`: turn data/raw/ into compact arrays, applying data.train_limit/test_limit.

Writes data/prepared/{train,test}.npz (uint8 `images` n x 28 x 28, uint8 `labels`,
`class_names`) so later stages load a split in milliseconds, with no gzip or IDX work.
"""
from __future__ import annotations

import numpy as np

from stages.common.data.datasets import DATASETS, SPLIT_FILES
from stages.common.data.idx import read_split
from stages.common.data.sampling import balanced_indices
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import RAW_DIR, prepared_path
from stages.common.settings import read

PARAMS = ("data.dataset", "data.train_limit", "data.test_limit")


def main(argv: list[str]) -> None:
    params = read(PARAMS)
    outputs = OutputSet([prepared_path(split) for split in SPLIT_FILES])
    class_names = np.array(DATASETS[params["data.dataset"]].class_names)
    limits = {"train": params["data.train_limit"], "test": params["data.test_limit"]}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = read_split(RAW_DIR / images_name, RAW_DIR / labels_name)
        keep = balanced_indices(labels, limits[split])
        outputs.npz(prepared_path(split), images=images[keep], labels=labels[keep], class_names=class_names)
        counts = np.bincount(labels[keep], minlength=len(class_names))
        print(f"prepare: {split} {len(keep)} images, per class {counts.min()}-{counts.max()}")
    outputs.commit()


if __name__ == "__main__":  # the old entry point, `python -m stages.prepare`
    from stages import run_as_module

    run_as_module("prepare")
