"""The autoencoders, layer for layer as in the reference notebook, plus a VAE and a denoising AE.

Every model maps a batch of 1x28x28 images in [0, 1] to a latent of `latent_dim`
with `encode()` and back to 1x28x28 with `decode()`, and owns its training
objective in `loss_function()`. Which models exist, and their names, is the
catalogue's business (`stages.common.models.catalogue`); `build_model` reads it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stages.common.models.catalogue import ARCH_IDS, CATALOGUE


class Autoencoder(nn.Module):
    """An encoder and a decoder trained to reproduce their input under mean squared error.

    Subclasses build `encoder` and `decoder`, and may override `encode` (input
    preprocessing), `loss_function` (another objective) and `sample_latents`.
    """

    encoder: nn.Module
    decoder: nn.Module
    # How `sample_latents` draws, for figure titles.
    sampling = "a Gaussian fitted to training latents"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss_function(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective on batch `x`, and its parts worth logging; `mse` (per pixel) is always one."""
        loss = F.mse_loss(self(x).float(), x)
        return loss, {"mse": loss}

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator, z_train: torch.Tensor) -> torch.Tensor:
        """`n` latents to decode into new images.

        A plain autoencoder has no prior, so this draws from a Gaussian fitted to the
        latents of training images (ex-post density estimation, Ghosh et al. 2020).
        """
        z = z_train.double()
        mean = z.mean(0)
        cov = torch.cov(z.T) + 1e-6 * torch.eye(z.shape[1], dtype=torch.float64)
        eps = torch.randn(n, z.shape[1], generator=generator, dtype=torch.float64)
        return (mean + eps @ torch.linalg.cholesky(cov).T).float()


class SuperResAE(Autoencoder):
    """Encodes a 14x14 bilinear downsample of the image; decodes to the full 28x28."""

    def __init__(self, latent_dim: int):
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


def conv_encoder_body() -> list[nn.Module]:
    """The Conv AE's convolutions down to 128x7x7, flattened (6,272 features)."""
    return [
        nn.Conv2d(1, 32, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Flatten(),
    ]


def conv_decoder(latent_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(latent_dim, 128 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, kernel_size=4, stride=2, padding=1), nn.Sigmoid(),
    )


class ConvAE(Autoencoder):
    """Strided convolutions with batch norm down to 128x7x7, one linear layer to the latent."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.encoder = nn.Sequential(*conv_encoder_body(), nn.Linear(128 * 7 * 7, latent_dim))
        self.decoder = conv_decoder(latent_dim)


class StackedAE(Autoencoder):
    """Fully connected 784-512-256-128-latent and back."""

    def __init__(self, latent_dim: int):
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


def bernoulli_nll(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over all elements, logs clamped at -100 as F.binary_cross_entropy.

    Written out because F.binary_cross_entropy refuses to run under CUDA autocast.
    """
    p = probabilities.float()
    log_p = torch.log(p).clamp(min=-100)
    log_not_p = torch.log1p(-p).clamp(min=-100)
    return -(target * log_p + (1 - target) * log_not_p).sum()


class ConvVAE(Autoencoder):
    """A convolutional VAE: the Conv AE's layers, the encoder giving a mean and a log-variance.

    Loss per image: reconstruction (Bernoulli negative log-likelihood summed over
    the 784 pixels, or squared error summed) + beta x KL(q(z|x) || N(0, I)).
    `encode()` returns the mean, so latents, t-SNE and SVM see a deterministic code.
    """

    sampling = "the prior N(0, I)"

    def __init__(self, latent_dim: int, beta: float, reconstruction: str):
        super().__init__()
        self.latent_dim, self.beta, self.reconstruction = latent_dim, beta, reconstruction
        self.encoder = nn.Sequential(*conv_encoder_body(), nn.Linear(128 * 7 * 7, 2 * latent_dim))
        self.decoder = conv_decoder(latent_dim)

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]

    def loss_function(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, log_var = self.encode_distribution(x)
        mean, log_var = mean.float(), log_var.float()
        # Reparameterisation: z = mean + sigma * eps keeps the sample differentiable.
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        reconstructed = self.decode(z).float()
        n = x.shape[0]
        if self.reconstruction == "bce":
            reconstruction = bernoulli_nll(reconstructed, x) / n
        else:
            reconstruction = ((reconstructed - x) ** 2).sum() / n
        kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / n
        loss = reconstruction + self.beta * kl
        mse = F.mse_loss(reconstructed.detach(), x)
        return loss, {"mse": mse, "reconstruction": reconstruction.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator, z_train: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


def corrupt(x: torch.Tensor, noise: str, noise_std: float, mask_fraction: float,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """`x` with noise: additive Gaussian clipped to [0, 1], or masking (pixels set to 0).

    Draws from `generator` (on its own device, then moved) or, without one, from
    torch's seeded global generator on `x`'s device.
    """
    where = generator.device if generator is not None else x.device
    if noise == "gaussian":
        draw = torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
        return (x + noise_std * draw).clamp_(0.0, 1.0)
    if noise == "masking":
        draw = torch.rand(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
        return x * (draw >= mask_fraction)
    raise ValueError(f"unknown noise {noise!r}")


class DenoisingAE(ConvAE):
    """The Conv AE's layers, trained to map a corrupted image to the clean one (settings: NoiseSettings)."""

    def __init__(self, latent_dim: int, noise: str, noise_std: float, mask_fraction: float):
        super().__init__(latent_dim)
        self.noise, self.noise_std, self.mask_fraction = noise, noise_std, mask_fraction

    def loss_function(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        noisy = corrupt(x, self.noise, self.noise_std, self.mask_fraction)
        loss = F.mse_loss(self(noisy).float(), x)
        return loss, {"mse": loss}


def build_model(arch: str, latent_dim: int, settings: dict | None = None) -> Autoencoder:
    """Construct catalogue architecture `arch` with a latent of `latent_dim`.

    `settings`: the keyword arguments of its constructor (its models.<arch> entry).
    """
    try:
        entry = CATALOGUE[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCH_IDS)}") from None
    return entry.model_class()(latent_dim, **(settings or {}))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_counts(model: Autoencoder) -> dict:
    encoder, decoder = count_params(model.encoder), count_params(model.decoder)
    return {"params_encoder": encoder, "params_decoder": decoder, "params_total": encoder + decoder}
