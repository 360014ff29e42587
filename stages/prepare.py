"""Stage `prepare`: turn data/raw/ into compact arrays, applying data.train_limit/test_limit.

Writes data/prepared/{train,test}.npz (uint8 `images` n x 28 x 28, uint8 `labels`,
`class_names`) so later stages load a split in milliseconds, with no gzip or IDX work.
"""
from __future__ import annotations

import numpy as np

from stages.common.atomic import OutputSet
from stages.common.datasets import DATASETS, SPLIT_FILES
from stages.common.errors import run_stage
from stages.common.idx import read_split
from stages.common.layout import RAW_DIR, prepared_path
from stages.common.params import load_params
from stages.common.sampling import balanced_indices


def main(argv: list[str]) -> None:
    params = load_params()
    data = params["data"]
    outputs = OutputSet([prepared_path(split) for split in SPLIT_FILES])
    class_names = np.array(DATASETS[data["dataset"]].class_names)
    limits = {"train": data["train_limit"], "test": data["test_limit"]}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = read_split(RAW_DIR / images_name, RAW_DIR / labels_name)
        keep = balanced_indices(labels, limits[split])
        outputs.npz(prepared_path(split), images=images[keep], labels=labels[keep], class_names=class_names)
        counts = np.bincount(labels[keep], minlength=len(class_names))
        print(f"prepare: {split} {len(keep)} images, per class {counts.min()}-{counts.max()}")
    outputs.commit()


if __name__ == "__main__":
    run_stage(main)
