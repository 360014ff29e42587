"""Stage `latents@<arch>`: encode the whole train and test split with the trained model.

Usage: python -m stages.latents <arch>

Writes data/latents/<arch>.npz (float32 z_train, z_test; uint8 y_train, y_test;
class_names) and metrics/run/latents_<arch>.json (sizes and timing).
"""
from __future__ import annotations

import time

from stages.common.allocator import keep_large_buffers_off_heap
from stages.common.artifacts import load_prepared
from stages.common.atomic import OutputSet
from stages.common.checkpoint import load_model
from stages.common.device import resolve_device, seed_everything, set_threads
from stages.common.errors import run_stage
from stages.common.layout import latents_path, model_path, parse_arch, run_path
from stages.common.params import load_params
from stages.common.training import encode_all, to_float_images
from stages.common.usage import peak_rss_mb


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "latents")
    keep_large_buffers_off_heap()
    params = load_params()
    outputs = OutputSet([latents_path(arch), run_path("latents", arch)])
    device = resolve_device(params["train"]["device"])
    set_threads(params["train"]["threads"])
    seed_everything(params["seed"])
    batch_size = params["latents"]["batch_size"]
    # Model options (vae.*, denoising.*) shape training, not the layers: the defaults load the weights.
    model = load_model(arch, model_path(arch), params["train"]["latent_dim"]).to(device)

    started = time.perf_counter()
    arrays = {}
    for split in ("train", "test"):
        data = load_prepared(split)
        arrays[f"z_{split}"] = encode_all(model, to_float_images(data["images"], device), batch_size)
        arrays[f"y_{split}"] = data["labels"]
        arrays["class_names"] = data["class_names"]
    seconds = time.perf_counter() - started

    outputs.npz(latents_path(arch), **arrays)
    outputs.json(run_path("latents", arch), {
        "n_train": len(arrays["z_train"]),
        "n_test": len(arrays["z_test"]),
        "latent_dim": int(arrays["z_train"].shape[1]),
        "seconds": round(seconds, 3),
        "peak_rss_mb": peak_rss_mb(),
    })
    outputs.commit()
    print(f"latents {arch}: {arrays['z_train'].shape} train, {arrays['z_test'].shape} test in {seconds:.1f} s")


if __name__ == "__main__":
    run_stage(main)
