"""Stage `train@<arch>`: train one autoencoder and record its curves, metrics and reconstructions.

Usage: python -m stages.train <arch>   (arch: superres, conv or stacked)

Writes data/models/<arch>.pt (state_dict), metrics/train_<arch>.json,
plots/loss/<arch>.csv (one row per epoch) and plots/reconstructions/<arch>.png.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import torch

from stages.common.atomic import save_figure, write_bytes, write_json, write_text
from stages.common.device import check_precision, resolve_device, seed_everything
from stages.common.errors import PipelineError, run_stage
from stages.common.layout import PLOTS_DIR, metrics_path, model_path, parse_arch
from stages.common.models import build_model, param_counts
from stages.common.params import ARCH_NAMES, load_params
from stages.common.progress import batch_bar
from stages.common.training import EpochResult, fit, to_float_images
from stages.common.usage import peak_rss_mb
from stages.prepare import load_prepared

N_RECONSTRUCTIONS = 10


def loss_csv(history: list[EpochResult]) -> str:
    lines = ["epoch,train_loss,test_mse"]
    lines += [f"{r.epoch},{r.train_loss:.8f},{r.test_mse:.8f}" for r in history]
    return "\n".join(lines) + "\n"


def save_state_dict(model: torch.nn.Module, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes(path, buffer.getvalue())


def reconstruction_figure(model, x_test: torch.Tensor, labels, title: str):
    """Reconstruct the first test image of each class (the first ten if a class is missing)."""
    from stages.common.figures import reconstructions
    from stages.common.sampling import first_per_class

    try:
        picked = first_per_class(labels, 1)[:N_RECONSTRUCTIONS]
    except PipelineError:
        picked = list(range(min(N_RECONSTRUCTIONS, len(labels))))
    batch = x_test[torch.as_tensor(picked, device=x_test.device)]
    model.eval()
    with torch.no_grad():
        out = model(batch)
    return reconstructions(batch[:, 0].cpu().numpy(), out[:, 0].float().cpu().numpy(), title)


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "train")
    params = load_params()
    train = params["train"]
    device = resolve_device(train["device"])
    check_precision(train["precision"], device)
    seed_everything(params["seed"])

    train_split, test_split = load_prepared("train"), load_prepared("test")
    x_train = to_float_images(train_split["images"], device)
    x_test = to_float_images(test_split["images"], device)
    model = build_model(arch, train["latent_dim"]).to(device)

    n_batches = -(-len(x_train) // train["batch_size"])
    bar = None

    def on_batch() -> None:
        nonlocal bar
        if bar is None:
            bar = batch_bar(f"{arch} epoch", n_batches)
        bar.update()

    def on_epoch(result: EpochResult) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        print(f"train {arch}: epoch {result.epoch}/{train['epochs']} train_loss {result.train_loss:.6f} "
              f"test_mse {result.test_mse:.6f} ({result.seconds:.1f} s)", flush=True)

    print(f"train {arch}: {len(x_train)} train / {len(x_test)} test images on {device}, {train['precision']}")
    started = time.perf_counter()
    history = fit(
        model, x_train, x_test, train["epochs"], train["batch_size"], train["lr"], params["seed"],
        train["precision"], params["latents"]["batch_size"], on_batch=on_batch, on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - started

    save_state_dict(model, model_path(arch))
    write_text(PLOTS_DIR / "loss" / f"{arch}.csv", loss_csv(history))
    title = f"{ARCH_NAMES[arch]}: test images (top) and their reconstructions"
    fig = reconstruction_figure(model, x_test, test_split["labels"], title)
    save_figure(fig, PLOTS_DIR / "reconstructions" / f"{arch}.png")
    write_json(metrics_path("train", arch), {
        "train_loss": round(history[-1].train_loss, 8),
        "test_mse": round(history[-1].test_mse, 8),
        **param_counts(model),
        "epochs": train["epochs"],
        "n_train": len(x_train),
        "n_test": len(x_test),
        "device": device.type,
        "precision": train["precision"],
        "seconds_per_epoch": round(sum(r.seconds for r in history) / len(history), 3),
        "seconds": round(seconds, 3),
        "peak_rss_mb": peak_rss_mb(),
    })


if __name__ == "__main__":
    run_stage(main)
