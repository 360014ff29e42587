"""Training time of every architecture on an accelerator, with the data resident on it.

    python -m benchmarks.gpu [--data DIR] [--device cuda] [--epochs 5] [--precision bf16] [--out PATH]

The train stage's own code (`fit`): each split is moved to the device once, so an
epoch is index batches into it, no host-to-device copies. Prints one line per
architecture (training seconds over all epochs, the first epoch apart since it
pays CUDA's start-up, and the final test MSE) and the total, and writes JSON
(default benchmarks/results/gpu.json). `--device cpu` runs the same on the CPU,
which is how the tests check it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.common.models.catalogue import ARCH_IDS  # noqa: E402

DEFAULT_DATA = [Path("/usr/share/datasets/fashion-mnist"), ROOT.parent / "shared" / "data" / "mnist-small",
                ROOT / "data" / "raw"]


def device_name(device) -> str:
    import torch

    from benchmarks.speed import cpu_model

    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def run(args) -> dict:
    import torch

    from benchmarks.settings import params_model, settings
    from benchmarks.speed import load_train_images
    from stages.common.data.datasets import SPLIT_FILES
    from stages.common.data.idx import read_split
    from stages.common.models.allocator import keep_freed_memory_for_reuse
    from stages.common.models.device import check_precision, resolve_device, seed_everything
    from stages.common.models.training import fit, to_float_images, total_steps

    keep_freed_memory_for_reuse()  # as the train stage does
    data = args.data or next((d for d in DEFAULT_DATA if (d / SPLIT_FILES["train"][0]).is_file()), None)
    if data is None:
        sys.exit("error: no data folder; pass --data DIR holding the four IDX .gz files")
    device = resolve_device(args.device)
    check_precision(args.precision, device)
    images, _ = load_train_images(data, args.train_limit)
    test_images, _ = read_split(*(data / name for name in SPLIT_FILES["test"]))
    x_train, x_test = to_float_images(images, device), to_float_images(test_images, device)
    report = {"device": device_name(device), "torch": torch.__version__, "data": str(data),
              "n_train": len(images), "epochs": args.epochs, "precision": args.precision, "archs": {}}
    print(f"{report['device']}: {len(images)} images, {args.epochs} epochs, {args.precision}", flush=True)
    chosen = settings()
    print(chosen.describe(), flush=True)
    report["settings"] = chosen.__dict__
    for arch in args.archs:
        seed_everything(chosen.seed)
        model = params_model(arch).to(device)
        started = time.perf_counter()
        steps = total_steps(len(x_train), chosen.batch_size, args.epochs, None)
        history = fit(model, x_train, x_test, steps, chosen.batch_size, chosen.lr, chosen.seed,
                      args.precision, chosen.encode_batch).history
        report["archs"][arch] = {
            "train_seconds": sum(r.seconds for r in history),
            "first_epoch_seconds": history[0].seconds,
            "wall_seconds": time.perf_counter() - started,  # with the per-epoch test MSE
            "test_mse": history[-1].test_mse,
        }
        entry = report["archs"][arch]
        print(f"  {arch}: {entry['train_seconds']:.2f} s training (first epoch {entry['first_epoch_seconds']:.2f} s), "
              f"test MSE {entry['test_mse']:.5f}", flush=True)
    report["train_seconds"] = sum(e["train_seconds"] for e in report["archs"].values())
    print(f"total: {report['train_seconds']:.2f} s of training", flush=True)
    return report


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder with the four IDX .gz files")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-limit", type=int, help="train on this many images (default: all)")
    parser.add_argument("--archs", nargs="+", default=list(ARCH_IDS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu.json")
    args = parser.parse_args(argv)
    from stages.common.errors import PipelineError

    try:
        report = run(args)
    except PipelineError as err:
        sys.exit(f"error: {err}")
    from stages.common.outputs.atomic import write_json

    write_json(args.out, report)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
