"""Stage `latents@<arch>`: encode the whole train and test split with the trained model.

Usage: python -m stages latents <arch>

Writes data/latents/<arch>.npz (float32 z_train, z_test; uint8 y_train, y_test;
class_names) and metrics/run/latents_<arch>.json (sizes, timing, and the active units: the
latent dimensions whose code varies across the test images, Burda et al. 2016; for the VAE,
of its posterior means; a fact for the sweep's report, kept out of `dvc metrics show`).
"""
from __future__ import annotations

import time

import numpy as np

from stages.common.errors import PipelineError
from stages.common.models.allocator import keep_large_buffers_off_heap
from stages.common.models.catalogue import CATALOGUE, parse_arch
from stages.common.models.checkpoint import ModelSpec, load_checkpoint
from stages.common.models.device import resolve_device, seed_everything, set_threads
from stages.common.models.training import active_units, encode_all, to_float_images
from stages.common.outputs.atomic import OutputSet
from stages.common.outputs.layout import latents_path, model_path, run_path
from stages.common.outputs.read import load_prepared
from stages.common.outputs.usage import usage
from stages.common.settings import as_kwargs, read

PARAMS = ("seed", "train.latent_dim", "train.device", "train.threads", "latents.batch_size", "models.{arch}")


def main(argv: list[str]) -> None:
    arch = parse_arch(argv, "latents")
    keep_large_buffers_off_heap()
    params = read(PARAMS, arch=arch, catalogue=CATALOGUE)
    outputs = OutputSet([latents_path(arch), run_path("latents", arch)])
    device = resolve_device(params["train.device"])
    set_threads(params["train.threads"])
    seed_everything(params["seed"])
    batch_size = params["latents.batch_size"]
    # The model file builds its own model; checked against params.yaml so a stale file is named.
    expected = ModelSpec(arch, params["train.latent_dim"], as_kwargs(params[f"models.{arch}"]))
    _, model = load_checkpoint(model_path(arch), expected)
    model = model.to(device)

    started = time.perf_counter()
    arrays = {}
    for split in ("train", "test"):
        data = load_prepared(split)
        arrays[f"z_{split}"] = encode_all(model, to_float_images(data["images"], device), batch_size)
        arrays[f"y_{split}"] = data["labels"]
        arrays["class_names"] = data["class_names"]
    seconds = time.perf_counter() - started
    if not all(np.isfinite(arrays[key]).all() for key in ("z_train", "z_test")):
        raise PipelineError(f"{model_path(arch)}: its model encodes some images to NaN or infinity; nothing was "
                            f"written; retrain it: dvc repro -f train@{arch}")

    outputs.npz(latents_path(arch), **arrays)
    outputs.json(run_path("latents", arch), {
        "n_train": len(arrays["z_train"]),
        "n_test": len(arrays["z_test"]),
        "latent_dim": int(arrays["z_train"].shape[1]),
        "active_units": active_units(arrays["z_test"]),
        "seconds": round(seconds, 3),
        **usage(),
    })
    outputs.commit()
    print(f"latents {arch}: {arrays['z_train'].shape} train, {arrays['z_test'].shape} test in {seconds:.1f} s")


if __name__ == "__main__":  # the old entry point, `python -m stages.latents`
    from stages import run_as_module

    run_as_module("latents")
