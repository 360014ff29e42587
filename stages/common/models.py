"""The registry of the three autoencoders, layer for layer as in the reference notebook.

Every model maps a batch of 1x28x28 images in [0, 1] to a latent of `latent_dim`
with `encode()` and back to 1x28x28 with `decode()`. The Super-Resolution AE does
its 14x14 downsampling inside `encode()`, so no caller has to special-case it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Autoencoder(nn.Module):
    """An encoder and a decoder; subclasses build them and may add input preprocessing."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class SuperResAE(Autoencoder):
    """Encodes a 14x14 bilinear downsample of the image; decodes to the full 28x28."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
            nn.Linear(256, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, kernel_size=3, padding=1), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        low_res = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False)
        return self.encoder(low_res)


class ConvAE(Autoencoder):
    """Strided convolutions with batch norm down to 128x7x7, one linear layer to the latent."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (128, 7, 7)),
            nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),
        )


class StackedAE(Autoencoder):
    """Fully connected 784-512-256-128-latent and back."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512), nn.ReLU(),
            nn.Linear(512, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(),
            nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 784), nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),
        )


REGISTRY: dict[str, type[Autoencoder]] = {
    "superres": SuperResAE,
    "conv": ConvAE,
    "stacked": StackedAE,
}

def build_model(arch: str, latent_dim: int) -> Autoencoder:
    """Construct architecture `arch` (a REGISTRY key) with a latent of `latent_dim`."""
    try:
        cls = REGISTRY[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(REGISTRY)}") from None
    return cls(latent_dim)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_counts(model: Autoencoder) -> dict:
    encoder, decoder = count_params(model.encoder), count_params(model.decoder)
    return {"params_encoder": encoder, "params_decoder": decoder, "params_total": encoder + decoder}
