"""The architecture catalogue: the one place that says which autoencoders exist.

Params validation, model building, the report, the plots and the tests all read
this table. Adding an architecture means writing its model class (and, if it has
settings of its own, a settings dataclass), adding one entry here, and giving it a
`models.<id>` entry in params.yaml (`{}` without settings) and its id in `archs`.

Kept free of torch: classes are named by their import path and imported only by
the stages that train or encode, so the other stages start fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from stages.common.errors import PipelineError


@dataclass(frozen=True)
class Architecture:
    id: str
    name: str
    # "module:Class" of its torch.nn.Module, a subclass of nets.Autoencoder, built as
    # Class(latent_dim, **settings).
    model: str
    # "module:Class" of its settings dataclass (params.yaml's models.<id>), if it has settings.
    settings: str | None = None
    # What the reference notebook printed for it on MNIST (60,000/10,000), if it had it.
    reference_mnist: dict = field(default_factory=dict)
    # Where it comes from, one line for the README and the report.
    origin: str = ""

    def model_class(self):
        return _import(self.model)

    def settings_class(self):
        return _import(self.settings) if self.settings else None


def _import(path: str):
    module_name, class_name = path.split(":")
    return getattr(importlib.import_module(module_name), class_name)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "superres", "Super-Resolution AE", "stages.common.models.nets:SuperResAE",
        reference_mnist={"train_loss": 0.008047, "test_mse": 0.007407},
        origin="the notebook",
    ),
    Architecture(
        "conv", "Convolutional AE", "stages.common.models.nets:ConvAE",
        reference_mnist={"train_loss": 0.002153, "test_mse": 0.002096, "svm_accuracy": 0.9878},
        origin="the notebook",
    ),
    Architecture(
        "stacked", "Stacked AE", "stages.common.models.nets:StackedAE",
        reference_mnist={"train_loss": 0.015532, "test_mse": 0.014568},
        origin="the notebook",
    ),
    Architecture(
        "vae", "Variational AE", "stages.common.models.nets:ConvVAE",
        settings="stages.common.settings:VAESettings",
        origin="the notebook's roadmap",
    ),
    Architecture(
        "denoising", "Denoising AE", "stages.common.models.nets:DenoisingAE",
        settings="stages.common.settings:NoiseSettings",
        origin="the notebook's roadmap",
    ),
)

CATALOGUE: dict[str, Architecture] = {arch.id: arch for arch in ARCHITECTURES}
ARCH_IDS: tuple[str, ...] = tuple(CATALOGUE)


def display_name(arch_id: str) -> str:
    return CATALOGUE[arch_id].name


def parse_arch(argv: list[str], stage: str) -> str:
    """The single <arch> argument of a per-architecture stage."""
    if len(argv) != 1 or argv[0] not in ARCH_IDS:
        raise PipelineError(f"usage: python -m stages {stage} <arch>, arch one of {', '.join(ARCH_IDS)}; got {argv}")
    return argv[0]
