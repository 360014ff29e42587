"""Training and evaluating an autoencoder on a split held whole in memory.

The notebook fed images through a torchvision dataset and a DataLoader, converting
each image in Python; here a split is one float tensor on the training device and a
batch is an index into it, so no per-image work happens during an epoch.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stages.common.device import autocast

PIXELS = 28 * 28


def to_float_images(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) in [0, 1] on `device`, as ToTensor() scales."""
    tensor = torch.from_numpy(np.require(images_u8, np.uint8, ['C', 'W'])).to(device)
    return tensor.unsqueeze(1).float().div_(255.0)


def fast_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """Put a convolutional model's weights in the memory layout its device runs fastest."""
    if device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        # oneDNN's CPU convolutions run about 15% faster on NHWC weights (benchmarks/speed.py).
        model.to(memory_format=torch.channels_last)
    return model


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    test_mse: float
    seconds: float


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x_train: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    precision: str,
    on_batch: Callable[[], None] | None = None,
) -> float:
    """One pass over `x_train` in shuffled batches; returns the mean of the batch losses."""
    model.train()
    loss_fn = nn.MSELoss()
    n = x_train.shape[0]
    order = torch.randperm(n, generator=generator).to(x_train.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x_train.device)
    n_batches = 0
    for start in range(0, n, batch_size):
        batch = x_train.index_select(0, order[start:start + batch_size])
        with autocast(precision, x_train.device):
            reconstruction = model(batch)
        loss = loss_fn(reconstruction.float(), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulate on the device: calling .item() per batch would stall a GPU.
        loss_sum += loss.detach()
        n_batches += 1
        if on_batch:
            on_batch()
    return float(loss_sum) / n_batches


@torch.no_grad()
def evaluate_mse(model: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    """Mean squared error per pixel over all of `x`, in float32 (the batch-size weighted mean)."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size]
        total += ((model(batch) - batch) ** 2).sum(dtype=torch.float64)
    return float(total) / (x.shape[0] * PIXELS)


@torch.no_grad()
def encode_all(model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Latents of every image in `x` as a float32 (n, latent_dim) array."""
    model.eval()
    parts = [model.encode(x[start:start + batch_size]).float().cpu() for start in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).numpy()


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    precision: str,
    eval_batch_size: int,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> list[EpochResult]:
    """Adam + MSE for `epochs` epochs; after each, the test MSE. Returns one result per epoch."""
    fast_layout(model, x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(model, optimizer, x_train, batch_size, generator, precision, on_batch)
        seconds = time.perf_counter() - started
        result = EpochResult(epoch, train_loss, evaluate_mse(model, x_test, eval_batch_size), seconds)
        history.append(result)
        if on_epoch:
            on_epoch(result)
    return history
