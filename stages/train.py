"""Stage `train@<arch>`: train one autoencoder and record its curves, metrics and pictures.

Usage: python -m stages train <arch>   (arch: an id of the catalogue, stages/common/models/catalogue.py)

Writes data/models/<arch>.pt (a self-describing checkpoint), metrics/train_<arch>.json (results),
data/errors/<arch>.npz (each test image's reconstruction and denoising error, float64),
metrics/run/train_<arch>.json (sizes, device, time, memory, and what judges the run: its steps, the
mean image's test MSE, how much its loss still fell at the end), plots/loss/<arch>.csv
(one row per pass over the data; under train.steps the last may be partial) and four pictures:
plots/{reconstructions,samples,interpolation,denoising}/<arch>.png. Every architecture also reports
`denoise_mse`: its output on noisy test images (test_noise.*, seeded) against the clean ones.
"""
from __future__ import annotations

import math
import time

import torch

from stages.common.errors import PipelineError
from stages.common.evaluation.statistics import standard_error
from stages.common.models.allocator import keep_freed_memory_for_reuse
from stages.common.models.catalogue import CATALOGUE, display_name, parse_arch
from stages.common.models.checkpoint import ModelSpec, checkpoint_bytes
from stages.common.models.device import check_precision, resolve_device, seed_everything, set_threads
from stages.common.models.nets import corrupt, param_counts
from stages.common.models.pictures import denoising_figure, interpolation_figure, reconstruction_figure, samples_figure
from stages.common.models.training import (
    EpochResult,
    Trained,
    TrainingDiverged,
    evaluate_mse,
    final_loss_drop,
    fit,
    mean_image_mse,
    per_image_mse,
    to_float_images,
    total_steps,
)
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import errors_path, metrics_path, model_path, plot_path, run_path
from stages.common.outputs.progress import EpochBars
from stages.common.outputs.read import load_prepared
from stages.common.outputs.usage import usage
from stages.common.settings import as_kwargs, read

PICTURES = ("reconstructions", "samples", "interpolation", "denoising")


def loss_csv(history: list[EpochResult]) -> str:
    """epoch, train_loss (the model's objective), train_mse, test_mse, then the model's other parts."""
    extra = sorted(set(history[0].parts) - {"mse"})
    lines = [",".join(["epoch", "train_loss", "train_mse", "test_mse", *extra])]
    for r in history:
        values = [r.train_loss, r.parts["mse"], r.test_mse, *(r.parts[name] for name in extra)]
        lines.append(",".join([str(r.epoch), *(f"{v:.8f}" for v in values)]))
    return "\n".join(lines) + "\n"


def rounded_or_null(value: float, digits: int) -> float | None:
    """JSON has no NaN: a figure that could not be computed (too few steps) is null."""
    return None if math.isnan(value) else round(value, digits)


PARAMS = ("seed", "train", "test_noise", "latents.batch_size", "models.{arch}")


def train_model(arch: str, model, x_train, x_test, train, seed: int, encode_batch: int) -> tuple[Trained, float]:
    """`fit` for train.epochs or train.steps, with progress bars and one-line errors; (trained, seconds)."""
    per_pass = -(-len(x_train) // train.batch_size)
    steps = total_steps(len(x_train), train.batch_size, train.epochs, train.steps)
    bars = EpochBars(arch, -(-steps // per_pass), per_pass)
    started = time.perf_counter()
    try:
        trained = fit(model, x_train, x_test, steps, train.batch_size, train.lr, seed,
                      train.precision, encode_batch, on_batch=bars.batch, on_epoch=bars.epoch)
    except TrainingDiverged as err:
        raise PipelineError(f"train@{arch}: training diverged in epoch {err.epoch} (loss {err.loss}); "
                            f"lower train.lr (now {train.lr}); nothing was written") from None
    finally:
        bars.close()
    if not all(bool(torch.isfinite(tensor).all()) for tensor in model.state_dict().values()):
        raise PipelineError(f"train@{arch}: the trained weights hold NaN or infinity; lower train.lr "
                            f"(now {train.lr}); nothing was written")
    return trained, time.perf_counter() - started


def draw_pictures(outputs: OutputSet, arch: str, model, x_train, x_test, noisy_test, test_split, seed: int,
                  encode_batch: int, noise: str) -> None:
    name, labels = display_name(arch), test_split["labels"]
    class_names = [str(c) for c in test_split["class_names"]]
    outputs.figure(plot_path("reconstructions", arch), reconstruction_figure(model, x_test, labels, name))
    outputs.figure(plot_path("samples", arch), samples_figure(model, x_train, encode_batch, seed, name))
    outputs.figure(plot_path("interpolation", arch), interpolation_figure(model, x_test, labels, class_names, name))
    outputs.figure(plot_path("denoising", arch), denoising_figure(model, x_test, noisy_test, labels, name, noise))


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "train")
    keep_freed_memory_for_reuse()
    params = read(PARAMS, arch=arch, catalogue=CATALOGUE)
    train, noise, seed = params["train"], params["test_noise"], params["seed"]
    encode_batch = params["latents.batch_size"]
    outputs = OutputSet([model_path(arch), errors_path(arch), plot_path("loss", arch, "csv"),
                         metrics_path("train", arch), run_path("train", arch),
                         *(plot_path(kind, arch) for kind in PICTURES)])
    device = resolve_device(train.device)
    check_precision(train.precision, device)
    threads = set_threads(train.threads)
    seed_everything(seed)

    train_split, test_split = load_prepared("train"), load_prepared("test")
    x_train = to_float_images(train_split["images"], device)
    x_test = to_float_images(test_split["images"], device)
    spec = ModelSpec(arch, train.latent_dim, as_kwargs(params[f"models.{arch}"]))
    model = spec.build().to(device)
    print(f"train {arch}: {len(x_train)} train / {len(x_test)} test images on {device}, {train.precision}, "
          f"{threads} threads")
    trained, seconds = train_model(arch, model, x_train, x_test, train, seed, encode_batch)
    history = trained.history

    # The same noisy test images for every architecture: drawn on the CPU from `seed`.
    noisy_test = corrupt(x_test.cpu(), noise.noise, noise.noise_std, noise.mask_fraction,
                         torch.Generator().manual_seed(seed)).to(device)
    denoise_mse = evaluate_mse(model, noisy_test, encode_batch, target=x_test)
    errors = {"test_mse": per_image_mse(model, x_test, encode_batch),
              "denoise_mse": per_image_mse(model, noisy_test, encode_batch, target=x_test)}
    last = history[-1]

    outputs.bytes(model_path(arch), checkpoint_bytes(spec, model))
    outputs.npz(errors_path(arch), **errors)
    outputs.text(plot_path("loss", arch, "csv"), loss_csv(history))
    draw_pictures(outputs, arch, model, x_train, x_test, noisy_test, test_split, seed, encode_batch, noise.noise)
    outputs.json(metrics_path("train", arch), {
        "train_loss": round(last.train_loss, 8),
        "test_mse": round(last.test_mse, 8),
        "test_mse_se": round(standard_error(errors["test_mse"]), 8),
        "denoise_mse": round(denoise_mse, 8),
        **{part: round(value, 6) for part, value in last.parts.items() if part != "mse"},
    })
    outputs.json(run_path("train", arch), {
        **param_counts(model), "epochs": len(history), "steps": trained.steps, "n_train": len(x_train),
        "n_test": len(x_test),
        "device": device.type, "precision": train.precision, "threads": threads,
        "train_mse": round(last.parts["mse"], 8),
        # What a run is judged by before a sweep compares it (docs/study.md): the test MSE of predicting every
        # pixel's training-set mean, and how much its loss still fell over the last fifth of its steps.
        "mean_image_mse": round(mean_image_mse(x_train, x_test), 8),
        "loss_drop_last_fifth": rounded_or_null(final_loss_drop(trained.step_losses), 6),
        "seconds_per_epoch": round(sum(r.seconds for r in history) / len(history), 3),
        "seconds": round(seconds, 3), **usage(),
    })
    outputs.commit()
    print(f"train {arch}: test_mse {last.test_mse:.6f}, denoise_mse {denoise_mse:.6f} in {seconds:.1f} s")


if __name__ == "__main__":  # the old entry point, `python -m stages.train`
    from stages import run_as_module

    run_as_module("train")
