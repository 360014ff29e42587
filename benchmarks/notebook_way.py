"""The reference notebook's data path, rebuilt here as the baseline to measure against.

A torchvision-style dataset that turns each image into a PIL image and then a tensor
with `ToTensor()`, fed through a `DataLoader` with batch 128 and shuffling, one
image at a time in Python: what the notebook did.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from stages.common.models.nets import Autoencoder


class NotebookMNIST(Dataset):
    """What torchvision.datasets.MNIST.__getitem__ does, over arrays already in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = torch.from_numpy(np.array(images))
        self.labels = torch.from_numpy(np.array(labels)).long()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), int(self.labels[index])


def notebook_epoch(model: nn.Module, optimizer, images: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """One training epoch the notebook's way; returns the mean batch loss."""
    loader = DataLoader(NotebookMNIST(images, labels), batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    loss_fn = nn.MSELoss()
    model.train()
    total, batches = 0.0, 0
    for batch, _ in loader:
        optimizer.zero_grad()
        # The notebook's three use plain MSE; a model with its own objective (VAE, denoising) uses it.
        loss = loss_fn(model(batch), batch) if type(model).loss_function is Autoencoder.loss_function \
            else model.loss_function(batch)[0]
        loss.backward()
        optimizer.step()
        total += loss.item()
        batches += 1
    return total / batches
