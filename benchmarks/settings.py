"""What the benchmarks measure with: params.yaml's values, read once, printed by each benchmark.

The benchmarks time the same work the pipeline does, so they take its settings
(seed, latent size, learning rate, batch sizes, the SVM's) from params.yaml rather
than repeating them: change a setting, and the benchmark measures the new one. Both
sides of a comparison (the notebook's way and the project's) get the same values;
the defaults are the notebook's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    seed: int
    latent_dim: int
    lr: float
    batch_size: int
    encode_batch: int   # latents.batch_size: images per forward pass when evaluating
    svm: dict           # params.yaml's svm section, as fit_and_score takes it
    confidence: float

    def describe(self) -> str:
        svm = ", ".join(f"{key} {value}" for key, value in self.svm.items())
        return (f"params.yaml: seed {self.seed}, latent_dim {self.latent_dim}, lr {self.lr:g}, batch_size "
                f"{self.batch_size}, latents.batch_size {self.encode_batch}; svm: {svm}")


@lru_cache(maxsize=1)
def settings(path: Path = ROOT / "params.yaml") -> Settings:
    from stages.common.settings import as_kwargs, read

    found = read(("seed", "train", "latents.batch_size", "svm", "statistics.confidence"), path)
    train = found["train"]
    return Settings(found["seed"], train.latent_dim, train.lr, train.batch_size, found["latents.batch_size"],
                    as_kwargs(found["svm"]), found["statistics.confidence"])


def params_model(arch: str, latent_dim: int | None = None):
    """Architecture `arch` built as the train stage builds it, with params.yaml's models.<arch> settings."""
    from stages.common.models.catalogue import CATALOGUE
    from stages.common.models.checkpoint import ModelSpec
    from stages.common.settings import as_kwargs, read

    chosen = read([f"models.{arch}"], ROOT / "params.yaml", catalogue=CATALOGUE)[f"models.{arch}"]
    return ModelSpec(arch, latent_dim or settings().latent_dim, as_kwargs(chosen)).build()
