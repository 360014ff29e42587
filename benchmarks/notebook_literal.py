"""The reference notebook's training, transcribed cell by cell: the check on the benchmark's baseline.

    python benchmarks/notebook_literal.py ARCH ROOT DATASET LIMIT SEED BATCH LR LATENT [KEEP_FILE]

Run as a script in a fresh interpreter, it imports nothing of the project: the
notebook's imports, its seeding, its torchvision datasets with `ToTensor()`, its
`DataLoader(batch_size=128, shuffle=True)` and its test loader (made before training,
as the notebook's data cell makes it: what a process reads and frees before its loop
sets how many page faults the loop takes), its three models layer for layer
(../shared/reference/notebook-facts.md), `Adam(lr=1e-3)`, `MSELoss()` and its
training loop. The VAE and the Denoising AE, which the notebook did not have, are
written the same way, each with the objective the project gives it. One epoch is
timed, as the notebook's loop runs it, with the CPU time and context switches of its
threads over it; the result is printed as one JSON line.
With the same seed, layers made in the same order and the same batches, its epoch's
loss equals the baseline's to the last bit, which the benchmark checks.
benchmarks/speed.py runs it beside benchmarks/notebook_way.py (the baseline) and the
project's way, so a reader sees whether the baseline is the notebook.
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms


class SuperResolutionAE(nn.Module):
    def __init__(self, latent_dim=64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=1, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        x = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False)
        return self.decoder(self.encoder(x))


class ConvAE(nn.Module):
    def __init__(self, latent_dim=64, code_dim=None):  # code_dim: the VAE's encoder gives 2 x latent_dim
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=1, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Flatten(), nn.Linear(128 * 7 * 7, code_dim or latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
            nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class StackedAE(nn.Module):
    def __init__(self, latent_dim=64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x)).view(-1, 1, 28, 28)


class VariationalAE(ConvAE):
    """Not the notebook's: its roadmap's VAE, the Conv AE's layers giving a mean and a log-variance."""

    def __init__(self, latent_dim=64):
        super().__init__(latent_dim, code_dim=2 * latent_dim)  # layers made as the project makes them: same weights

    def loss(self, x):
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        out = self.decoder(z)
        # Binary cross-entropy written out as the project writes it (F.binary_cross_entropy, the same
        # sum, adds its terms in another order), so that the two losses can be compared to the bit.
        log_p, log_not_p = torch.log(out).clamp(min=-100), torch.log1p(-out).clamp(min=-100)
        reconstruction = -(x * log_p + (1 - x) * log_not_p).sum() / x.shape[0]
        kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / x.shape[0]
        return reconstruction + 1.0 * kl  # params.yaml's models.vae.beta


class DenoisingAE(ConvAE):
    """Not the notebook's: its roadmap's denoising AE, trained on noisy inputs against the clean images."""

    def loss(self, x):
        noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
        return F.mse_loss(self(noisy), x)


MODELS = {"superres": SuperResolutionAE, "conv": ConvAE, "stacked": StackedAE, "vae": VariationalAE,
          "denoising": DenoisingAE}
DATASETS = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}


def main(argv):
    arch, root, dataset, limit, seed, batch, lr, latent = argv[:8]
    torch.manual_seed(int(seed))
    np.random.seed(int(seed))
    transform = transforms.ToTensor()
    train_dataset = DATASETS[dataset](root=root, train=True, download=False, transform=transform)
    if len(argv) > 8:  # a --train-limit run: the same images the other ways train on
        train_dataset = Subset(train_dataset, np.load(argv[8]).tolist())
    test_dataset = DATASETS[dataset](root=root, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_dataset, batch_size=int(batch), shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=int(batch), shuffle=False)
    model = MODELS[arch](int(latent))
    criterion = nn.MSELoss()
    optimizer = optim.Adam(model.parameters(), lr=float(lr))

    used, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    model.train()
    running_loss = 0.0
    for data, _ in train_loader:
        optimizer.zero_grad()
        loss = model.loss(data) if hasattr(model, "loss") else criterion(model(data), data)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (after.ru_utime + after.ru_stime) - (used.ru_utime + used.ru_stime)
    usage = {"cpu_seconds": cpu_seconds, "cores_busy": cpu_seconds / seconds,  # the benchmark's own record, inlined
             "system_seconds": after.ru_stime - used.ru_stime,
             "involuntary_switches": after.ru_nivcsw - used.ru_nivcsw,
             "voluntary_switches": after.ru_nvcsw - used.ru_nvcsw, "major_faults": after.ru_majflt - used.ru_majflt,
             "minor_faults": after.ru_minflt - used.ru_minflt}
    print(json.dumps({"seconds": seconds, "usage": usage, "loss": running_loss / len(train_loader),
                      "n_images": len(train_dataset), "n_test_images": len(test_loader.dataset),
                      "environment": sorted(os.environ),  # the names only: what the process that started it passed
                      "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("stages", "benchmarks",
                                                                                               "tools"))}))


if __name__ == "__main__":
    main(sys.argv[1:])
