"""The reference notebook's training, as it ran: the baseline the benchmark measures against.

torchvision's own dataset class (`MNIST` or `FashionMNIST`) reads the IDX files from
where torchvision looks for them, `ToTensor()` turns each image into a tensor in
Python, a `DataLoader` with batch 128 shuffles (the test set and its loader made
beside it, before training, as the notebook's data cell makes them), and Adam with
`MSELoss` trains. The
process gets nothing the notebook did not set: plain seeding (`torch.manual_seed`,
`np.random.seed`), torch's default threads, deterministic algorithms off, denormals
as the CPU computes them, glibc's allocator as it comes. `process_settings()` reads
those back, so a test can check that none of the project's settings leaked in, with
what the process inherited from the one that started it.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from benchmarks.machine import inherited_state

# torchvision's dataset classes, by the data folder they stand for.
DATASET_CLASSES = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}


def dataset_class_for(data: Path) -> str:
    """Which torchvision class reads `data`: FashionMNIST where the folder says so, else MNIST.

    The two read the same IDX format the same way; only the folder they look in differs.
    """
    return "fashion-mnist" if "fashion" in data.resolve().name.lower() else "mnist"


def torchvision_root(data: Path, dataset: str, cache: Path) -> Path:
    """A root under `cache` where torchvision's `dataset` class finds `data`'s four IDX files.

    torchvision looks for them decompressed in `<root>/<ClassName>/raw/`. They are
    written there once per version of `data` (its path, sizes and times name the
    root), each file atomically, and reused.
    """
    cls = DATASET_CLASSES[dataset]
    names = [Path(url).name for url, _ in cls.resources]
    stats = [(data / name).stat() for name in names]
    key = hashlib.sha256(repr((str(data.resolve()), [(s.st_size, s.st_mtime_ns) for s in stats])).encode())
    root = cache / f"{dataset}-{key.hexdigest()[:16]}"
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = raw / name.removesuffix(".gz")
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            with gzip.open(data / name, "rb") as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target)
    return root


def seed_as_the_notebook(seed: int) -> None:
    """What the notebook set, once at the start: numpy's and torch's seeds, nothing more."""
    np.random.seed(seed)
    torch.manual_seed(seed)


def notebook_loaders(root: Path, dataset: str, keep: np.ndarray | None, batch_size: int) -> tuple:
    """The notebook's data cell: torchvision's datasets with ToTensor, the training loader (its batch of 128,
    shuffled) and the test loader (unshuffled). The test set is read before training, as the notebook reads it:
    what a process allocated and freed before its loop sets how many page faults the loop takes (issue #34)."""
    make = DATASET_CLASSES[dataset]
    train = make(root=str(root), train=True, download=False, transform=transforms.ToTensor())
    test = make(root=str(root), train=False, download=False, transform=transforms.ToTensor())
    if keep is not None:  # a --train-limit run: the same images the project's way trains on
        train = Subset(train, keep.tolist())
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(test, batch_size=batch_size)


def notebook_epoch(model: nn.Module, optimizer, loader: DataLoader) -> float:
    """One training epoch the notebook's way; returns the mean batch loss (what it printed)."""
    criterion = nn.MSELoss()
    uses_mse = type(model).loss_function.__qualname__ == "Autoencoder.loss_function"
    model.train()
    total = 0.0
    for data, _ in loader:
        optimizer.zero_grad()
        # The notebook's three train on MSE; a model with its own objective (VAE, denoising) uses it.
        loss = criterion(model(data), data) if uses_mse else model.loss_function(data)[0]
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def flushes_denormals() -> bool:
    """Whether the CPU flushes denormal floats to zero in this process (torch.set_flush_denormal)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal: below float32's 1.18e-38
    return bool((tiny * 1.0).item() == 0.0)


def treats_denormal_inputs_as_zero() -> bool:
    """Whether denormal *inputs* read as zero (the MXCSR's DAZ bit): a denormal times 1e10 is a normal number
    unless the input was taken as 0 (flush-to-zero alone only flushes denormal results)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    return bool((tiny * 1e10).item() == 0.0)


# Variables of the environment that change how the math libraries under torch run (threads, kernels, allocator).
MATH_ENV_PREFIXES = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "DNNL_", "ONEDNN_", "ATEN_", "TORCH_",
                     "MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")


def process_settings() -> dict:
    """What this process runs with, of the settings the project changes and the notebook did not: its
    floating-point state, threads, the project's modules and the environment the math libraries read."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "flush_denormal": flushes_denormals(),
        "denormals_are_zero": treats_denormal_inputs_as_zero(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "project_modules": sorted(m for m in sys.modules if m.startswith("stages.common.models.")
                                  and m.rsplit(".", 1)[1] in ("allocator", "device", "training")),
        "malloc_env": sorted(k for k in os.environ if k.startswith("MALLOC_") or k.startswith("GLIBC_TUNABLES")),
        "math_env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(MATH_ENV_PREFIXES)},
        "inherited": inherited_state(),  # affinity, niceness, huge pages, CPU quota: what its parent passed on
    }
