"""Training and evaluating an autoencoder on a split held whole in memory.

The notebook fed images through a torchvision dataset and a DataLoader, converting
each image in Python; here a split is one float tensor on the training device and a
batch is an index into it, so no per-image work happens during an epoch. The
objective is the model's own (`Autoencoder.loss_function`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from stages.common.data.datasets import PIXELS
from stages.common.models.device import autocast


class TrainingDiverged(Exception):
    """The loss of an epoch was not a finite number."""

    def __init__(self, epoch: int, loss: float):
        super().__init__(f"epoch {epoch}: loss {loss}")
        self.epoch, self.loss = epoch, loss


def to_float_images(images_u8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) in [0, 1] on `device`, as ToTensor() scales."""
    tensor = torch.from_numpy(np.require(images_u8, np.uint8, ['C', 'W'])).to(device)
    return tensor.unsqueeze(1).float().div_(255.0)


def fast_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """Put a convolutional model's weights in the memory layout its device runs fastest."""
    if device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        # oneDNN's CPU convolutions run faster on NHWC weights (benchmarks/speed.py measures it).
        model.to(memory_format=torch.channels_last)
    return model


def adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where the device has one (the same update, one pass per step).

    It saves a pass over the parameters per step, which matters most for the fully
    connected models (benchmarks/profile_step.py --adam measures it); its rounding
    differs from the per-parameter loop in the last bits, and it is as deterministic.
    """
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except RuntimeError:  # a device without the fused kernel
        return torch.optim.Adam(model.parameters(), lr=lr)


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    test_mse: float
    seconds: float
    # Means over the epoch's batches of the parts the model logs (always `mse`).
    parts: dict = field(default_factory=dict)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x_train: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    precision: str,
    on_batch: Callable[[], None] | None = None,
    step_losses: torch.Tensor | None = None,
) -> tuple[float, dict]:
    """One pass over `x_train` in shuffled batches, cut short after len(step_losses) steps where that is given
    (each step's loss is written there); returns the mean batch loss and mean parts."""
    model.train()
    n = x_train.shape[0]
    order = torch.randperm(n, generator=generator).to(x_train.device)
    if step_losses is not None:
        n = min(n, len(step_losses) * batch_size)
    # Accumulated on the device: calling .item() per batch would stall a GPU.
    loss_sum = torch.zeros((), dtype=torch.float64, device=x_train.device)
    part_sums: dict[str, torch.Tensor] = {}
    n_batches = 0
    for start in range(0, n, batch_size):
        batch = x_train.index_select(0, order[start:start + batch_size])
        with autocast(precision, x_train.device):
            loss, parts = model.loss_function(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        if step_losses is not None:
            step_losses[n_batches] = loss.detach()
        for name, value in parts.items():
            part_sums[name] = part_sums.get(name, 0) + value.detach().double()
        n_batches += 1
        if on_batch:
            on_batch()
    return float(loss_sum) / n_batches, {name: float(total) / n_batches for name, total in part_sums.items()}


@torch.no_grad()
def evaluate_mse(model: nn.Module, x: torch.Tensor, batch_size: int, target: torch.Tensor | None = None) -> float:
    """Mean squared error per pixel of model(x) against `target` (default: x itself), in float32."""
    model.eval()
    target = x if target is None else target
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        out = model(x[start:start + batch_size])
        total += ((out - target[start:start + batch_size]) ** 2).sum(dtype=torch.float64)
    return float(total) / (x.shape[0] * PIXELS)


@torch.no_grad()
def per_image_mse(model: nn.Module, x: torch.Tensor, batch_size: int, target: torch.Tensor | None = None) -> np.ndarray:
    """Each image's mean squared error per pixel of model(x) against `target` (default: x), float64.

    The per-image outcomes behind a test MSE: its standard error over the test images,
    and the intervals of a sweep that count the test images' noise.
    """
    model.eval()
    target = x if target is None else target
    parts = [((model(x[start:start + batch_size]) - target[start:start + batch_size]) ** 2).flatten(1).mean(
        1, dtype=torch.float64).cpu() for start in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).numpy()


@torch.no_grad()
def mean_image_mse(x_train: torch.Tensor, x_test: torch.Tensor) -> float:
    """The test MSE per pixel of predicting every pixel's training-set mean: what a model that learnt nothing
    about the images scores, the reference of a study's failure rule."""
    mean_image = x_train.double().mean(0, keepdim=True)
    return float(((x_test.double() - mean_image) ** 2).mean())


@torch.no_grad()
def encode_all(model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """Latents of every image in `x` as a float32 (n, latent_dim) array."""
    model.eval()
    parts = [model.encode(x[start:start + batch_size]).float().cpu() for start in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).numpy()


def total_steps(n_train: int, batch_size: int, epochs: int | None, steps: int | None) -> int:
    """The optimizer steps of a training budget: `steps` where given, else `epochs` full passes."""
    return steps if steps is not None else epochs * -(-n_train // batch_size)


# The share of the steps whose loss, against the share before it, says whether training still moved at its end.
CONVERGENCE_WINDOW = 0.2


def final_loss_drop(step_losses: np.ndarray) -> float:
    """How much the training loss still fell at the end: (mean over the second-last fifth of the steps - mean over
    the last fifth) / |mean over the second-last fifth|. Positive: still falling; about 0: flat. NaN with fewer
    than 10 steps (no two windows to compare)."""
    losses = np.asarray(step_losses, dtype=np.float64)
    window = int(len(losses) * CONVERGENCE_WINDOW)
    if window < 2:
        return float("nan")
    before, last = losses[-2 * window:-window].mean(), losses[-window:].mean()
    return float((before - last) / abs(before)) if before != 0 else 0.0


@dataclass
class Trained:
    """What `fit` returns: a row per pass over the data (the last may be partial) and every step's loss."""

    history: list[EpochResult]
    step_losses: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.step_losses)


# Burda, Grosse & Salakhutdinov (2016, "Importance weighted autoencoders"): a latent unit is active when its
# posterior mean varies across images, Cov_x(E[z_i | x]) > 0.01.
ACTIVE_UNIT_VARIANCE = 0.01


def active_units(codes: np.ndarray) -> int:
    """How many latent units vary across images by more than ACTIVE_UNIT_VARIANCE (codes: (n, latent_dim), a
    VAE's posterior means): the dimensions a model uses, of those it has."""
    return int((np.asarray(codes, dtype=np.float64).var(axis=0) > ACTIVE_UNIT_VARIANCE).sum())


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    precision: str,
    eval_batch_size: int,
    on_batch: Callable[[], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> Trained:
    """Adam on the model's own loss for exactly `steps` optimizer steps, in shuffled passes over the data (the
    last pass cut short where `steps` ends inside it); after each pass, the test MSE. A budget of whole passes
    (`total_steps(epochs=...)`) trains exactly as epoch by epoch.

    Raises TrainingDiverged at the first pass whose loss is not finite.
    """
    fast_layout(model, x_train.device)
    optimizer = adam(model, lr)
    generator = torch.Generator().manual_seed(seed)
    step_losses = torch.zeros(steps, dtype=torch.float64, device=x_train.device)
    history, done, epoch = [], 0, 0
    while done < steps:
        epoch += 1
        started = time.perf_counter()
        train_loss, parts = train_epoch(model, optimizer, x_train, batch_size, generator, precision, on_batch,
                                        step_losses[done:])
        done = min(steps, done + -(-x_train.shape[0] // batch_size))
        seconds = time.perf_counter() - started
        test_mse = evaluate_mse(model, x_test, eval_batch_size)
        if not all(math.isfinite(v) for v in (train_loss, test_mse, *parts.values())):
            raise TrainingDiverged(epoch, train_loss if not math.isfinite(train_loss) else test_mse)
        result = EpochResult(epoch, train_loss, test_mse, seconds, parts)
        history.append(result)
        if on_epoch:
            on_epoch(result)
    return Trained(history, step_losses.cpu().numpy())
