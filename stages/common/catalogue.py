"""The architecture catalogue: the one place that says which autoencoders exist.

Params validation, model building, the report, the plots and the tests all read
this table. Adding an architecture means writing its model class and adding one
entry here (then listing its id in params.yaml's `archs`).

Kept free of torch: the model class is named by its import path and imported only
by the stages that train or encode, so the other stages start fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Architecture:
    id: str
    name: str
    # "module:Class" of its torch.nn.Module, a subclass of models.Autoencoder.
    model: str
    # The params.yaml section whose keys the model's constructor takes, if any.
    options: str | None = None
    # What the reference notebook printed for it on MNIST (60,000/10,000), if it had it.
    reference_mnist: dict = field(default_factory=dict)
    # Where it comes from, one line for the README and the report.
    origin: str = ""

    def model_class(self):
        module_name, class_name = self.model.split(":")
        return getattr(importlib.import_module(module_name), class_name)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "superres", "Super-Resolution AE", "stages.common.models:SuperResAE",
        reference_mnist={"train_loss": 0.008047, "test_mse": 0.007407},
        origin="the notebook",
    ),
    Architecture(
        "conv", "Convolutional AE", "stages.common.models:ConvAE",
        reference_mnist={"train_loss": 0.002153, "test_mse": 0.002096, "svm_accuracy": 0.9878},
        origin="the notebook",
    ),
    Architecture(
        "stacked", "Stacked AE", "stages.common.models:StackedAE",
        reference_mnist={"train_loss": 0.015532, "test_mse": 0.014568},
        origin="the notebook",
    ),
    Architecture(
        "vae", "Variational AE", "stages.common.models:ConvVAE", options="vae",
        origin="the notebook's roadmap",
    ),
    Architecture(
        "denoising", "Denoising AE", "stages.common.models:DenoisingAE", options="denoising",
        origin="the notebook's roadmap",
    ),
)

CATALOGUE: dict[str, Architecture] = {arch.id: arch for arch in ARCHITECTURES}
ARCH_IDS: tuple[str, ...] = tuple(CATALOGUE)


def display_name(arch_id: str) -> str:
    return CATALOGUE[arch_id].name
