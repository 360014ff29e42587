"""What a trained autoencoder draws: reconstructions, samples, latent interpolations, denoising.

Each function runs the model on test images and returns a matplotlib Figure; the
same pictures are made for every architecture, so they can be compared side by side.
"""
from __future__ import annotations

import numpy as np
import torch

from stages.common.data.sampling import first_per_class
from stages.common.errors import PipelineError
from stages.common.outputs.charts import image_grid

N_SHOWN = 10
N_SAMPLES = 40
INTERPOLATION_STEPS = 9
# (from, to) class pairs of the interpolation rows.
INTERPOLATION_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))


def one_per_class(labels: np.ndarray) -> np.ndarray:
    """The first test image of each class (the first ten images if some class is missing)."""
    try:
        return first_per_class(labels, 1)[:N_SHOWN]
    except PipelineError:
        return np.arange(min(N_SHOWN, len(labels)))


def _numpy(images: torch.Tensor) -> np.ndarray:
    return images[:, 0].float().cpu().numpy()


@torch.no_grad()
def reconstruction_figure(model, x_test: torch.Tensor, labels: np.ndarray, name: str):
    model.eval()
    batch = x_test[torch.as_tensor(one_per_class(labels), device=x_test.device)]
    return image_grid([_numpy(batch), _numpy(model(batch))], ["original", "reconstructed"],
                      f"{name}: test images and their reconstructions")


@torch.no_grad()
def denoising_figure(model, x_test: torch.Tensor, noisy_test: torch.Tensor, labels: np.ndarray, name: str,
                     noise: str):
    model.eval()
    index = torch.as_tensor(one_per_class(labels), device=x_test.device)
    noisy = noisy_test[index]
    return image_grid([_numpy(noisy), _numpy(model(noisy)), _numpy(x_test[index])],
                      ["noisy input", "output", "clean original"], f"{name} on test images with {noise} noise")


@torch.no_grad()
def samples_figure(model, x_train: torch.Tensor, batch_size: int, seed: int, name: str):
    """New images decoded from latents drawn as the model's `sample_latents` says."""
    from stages.common.models.training import encode_all

    model.eval()
    z_train = torch.from_numpy(encode_all(model, x_train[:5000], batch_size))
    generator = torch.Generator().manual_seed(seed)
    z = model.sample_latents(N_SAMPLES, generator, z_train).to(x_train.device)
    images = _numpy(model.decode(z))
    rows = [images[i:i + N_SHOWN] for i in range(0, N_SAMPLES, N_SHOWN)]
    return image_grid(rows, [""] * len(rows), f"{name}: images decoded from {model.sampling}")


@torch.no_grad()
def interpolation_figure(model, x_test: torch.Tensor, labels: np.ndarray, class_names: list, name: str):
    """Decoded straight lines in latent space between the first test images of two classes."""
    model.eval()
    present = set(np.unique(labels).tolist())
    pairs = [(a, b) for a, b in INTERPOLATION_PAIRS if a in present and b in present]
    if not pairs:
        pairs = [(int(labels[0]), int(labels[-1]))]
    first = {c: int(np.flatnonzero(labels == c)[0]) for c in present}
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS, device=x_test.device)[:, None]
    rows, row_labels = [], []
    for a, b in pairs:
        ends = model.encode(x_test[torch.as_tensor([first[a], first[b]], device=x_test.device)])
        z = (1 - weights) * ends[0] + weights * ends[1]
        rows.append(_numpy(model.decode(z)))
        row_labels.append(f"{class_names[a]} → {class_names[b]}")
    return image_grid(rows, row_labels, f"{name}: decoded latent interpolations between test images")
