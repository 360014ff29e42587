"""A notebook-way Super-Resolution AE epoch written from issue #34's description of its independent script, on
purpose not from the project's code: the check run beside benchmarks/notebook_literal.py (see README.md here).

    python independent_notebook.py ROOT   # ROOT: a torchvision root holding FashionMNIST/raw/

Prints one JSON line: the epoch's seconds, the time spent waiting on the loader, and over the epoch the page faults
and the CPU seconds (of them, in the kernel).
"""
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class SuperResolutionAE(nn.Module):
    def __init__(self, latent_dim=64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, kernel_size=3, padding=1), nn.Sigmoid())

    def forward(self, x):
        x = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False)
        return self.decoder(self.encoder(x))


torch.manual_seed(42)
dataset = datasets.FashionMNIST(sys.argv[1], train=True, download=False, transform=transforms.ToTensor())
loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=0)
model = SuperResolutionAE()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
waited = 0.0
before = resource.getrusage(resource.RUSAGE_SELF)
started = asked = time.perf_counter()
for images, _ in loader:
    waited += time.perf_counter() - asked
    optimizer.zero_grad()
    loss = criterion(model(images), images)
    loss.backward()
    optimizer.step()
    asked = time.perf_counter()
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "loader_wait": waited, "minor_faults": after.ru_minflt - before.ru_minflt,
                  "cpu_seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                  "system_seconds": after.ru_stime - before.ru_stime, "last_loss": loss.item()}))
