"""Shared fixtures: the project root, tiny IDX datasets written on the fly, the real MNIST sample."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.common.data.datasets import SPLIT_FILES  # noqa: E402
from tests.idxfiles import write_idx_gz  # noqa: E402

MNIST_SMALL = ROOT.parent / "shared" / "data" / "mnist-small"
# The modules that take minutes are collected first: `make test` hands whole files
# to two pytest-xdist workers in collection order (--dist loadfile
# --no-loadscope-reorder), so the end-to-end module starts at once on one worker and
# the rest of the suite runs beside it, instead of the end-to-end module starting
# after a worker's first few files and finishing last.
LONGEST_FIRST = ("test_pipeline.py", "test_cluster.py", "test_sweep.py", "test_extending.py", "test_grid.py",
                 "test_adversarial_remote.py", "test_experiments.py", "test_threads.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like toy images: each class a bright bar at its own position, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label: 6 + 2 * label, 4:24] = 220
    return images, labels.astype(np.uint8)


def write_idx_folder(folder: Path, n_train: int = 300, n_test: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = make_images(n, seed)
        images_name, labels_name = SPLIT_FILES[split]
        write_idx_gz(folder / images_name, images)
        write_idx_gz(folder / labels_name, labels)
    return folder


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """A complete four-file IDX source of toy images."""
    return write_idx_folder(tmp_path / "idx")


def data_source_for_e2e(tmp_root: Path) -> Path:
    """The real MNIST sample where the shared folder is present (CI), else toy IDX files (a user's clone).

    The toy set is as large as the e2e tests' limits, so every test holds on either.
    """
    if MNIST_SMALL.is_dir():
        return MNIST_SMALL
    return write_idx_folder(tmp_root / "idx-source", n_train=1200, n_test=300)


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory):
    """A scratch project with download and prepare done, a trained stacked model, its latents, t-SNE and SVM."""
    from tests.stagerun import make_project, stage  # stagerun imports this module

    root = tmp_path_factory.mktemp("damaged")
    source = write_idx_folder(root / "src", n_train=300, n_test=100)
    project = make_project(root / "p", {"archs": ["stacked"], "data": {"source": str(source)},
                                        "train": {"epochs": 1, "latent_dim": 8},
                                        "tsne": {"per_class": 5, "perplexity": 4}})
    for name, args in (("download", []), ("prepare", []), ("train", ["stacked"]), ("latents", ["stacked"]),
                       ("tsne", ["stacked"]), ("svm", ["stacked"])):
        stage(name, project, *args, check=True)
    return project
