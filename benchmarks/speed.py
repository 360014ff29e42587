"""Speed and memory of the pipeline against the notebook's way, measured side by side.

    python -m benchmarks.speed [--data DIR] [--runs 3] [--train-limit N] [--parts ...] [--out PATH]

In one run on the same data and machine it measures: the matrix-multiply peak
(float32, and bfloat16 where the CPU has it); one training epoch per architecture
as the notebook ran (benchmarks/notebook_way.py: torchvision's dataset class, none
of the project's process settings), the notebook's own code (benchmarks/notebook_literal.py,
from a login shell's environment) and the train stage's way, alternating, with the
GFLOP/s reached and each run's pair ratio; the SVM stage against a plain `SVC.fit` +
`predict`; the start-up of the stages that need no torch. Each measurement runs in
its own process, so its peak memory (RSS) is its own, and records the machine around
it and what its epoch used (benchmarks/machine.py). Prints a table and writes JSON
(default benchmarks/results/speed.json). `--parts` measures only some of it, to redo
one table after a change that touches only that part.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import (  # noqa: E402
    cpu_topology,
    inherited_state,
    login_shell_env,
    machine_counters,
    machine_during,
    process_usage,
    usage_during,
)
from benchmarks.settings import params_model, settings  # noqa: E402
from stages import TORCH_FREE_STAGES  # noqa: E402
from stages.common.models.catalogue import ARCH_IDS  # noqa: E402

DEFAULT_DATA = [Path("/usr/share/datasets/fashion-mnist"), ROOT.parent / "shared" / "data" / "mnist-small"]
PARTS = ("train", "quality", "svm", "startup")
# Where the notebook way finds the IDX files decompressed, as torchvision reads them.
NOTEBOOK_CACHE = ROOT / "benchmarks" / ".torchvision"


# ----------------------------------------------------------------------------- workers
# Each runs in a fresh interpreter (python -m benchmarks.speed worker TASK ARGS...) and
# prints one JSON line; the parent collects medians.

def read_data_split(data: Path, split: str):
    """Images and labels of `split` ("train" or "test") from the four IDX files in `data`."""
    from stages.common.data.datasets import SPLIT_FILES
    from stages.common.data.idx import read_split

    return read_split(*(data / name for name in SPLIT_FILES[split]))


def limited_train_indices(data: Path, limit: str):
    """The class-balanced training images a --train-limit run trains on, every way the same."""
    from stages.common.data.sampling import balanced_indices

    return balanced_indices(read_data_split(data, "train")[1], int(limit))


def load_train_images(data: Path, limit: int | None):
    from stages.common.data.sampling import balanced_indices

    images, labels = read_data_split(data, "train")
    keep = balanced_indices(labels, limit)
    return images[keep], labels[keep]


def worker_peak() -> dict:
    import torch

    def gflops(dtype, n=2048, reps=8):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - started)
        return 2 * n**3 / statistics.median(times) / 1e9

    from stages.common.models.device import cpu_supports_bf16

    # Without bf16 hardware torch emulates it at a few GFLOP/s: nothing to compare with.
    bf16 = gflops(torch.bfloat16, n=1024, reps=3) if cpu_supports_bf16() else None
    return {"fp32_gflops": gflops(torch.float32), "bf16_gflops": bf16}


def worker_train(way: str, arch: str, data: str, limit: str, precision: str, cache: str = "", seed: str = "") -> dict:
    seed_value = int(seed) if seed else settings().seed
    if way == "notebook":
        return notebook_train(arch, Path(data), limit, Path(cache or NOTEBOOK_CACHE), seed_value)
    import torch

    from stages.common.models.allocator import keep_freed_memory_for_reuse
    from stages.common.models.device import check_precision, seed_everything
    from stages.common.models.training import adam, fast_layout, to_float_images, train_epoch

    keep_freed_memory_for_reuse()  # as the train stage does, before its first tensor
    images, labels = load_train_images(Path(data), int(limit) if limit != "all" else None)
    chosen = settings()
    seed_everything(seed_value)
    cpu = torch.device("cpu")
    model = params_model(arch)
    check_precision(precision, cpu)
    fast_layout(model, cpu)
    optimizer = adam(model, chosen.lr)
    x = to_float_images(images, cpu)  # part of the stage's set-up, before its epochs
    used, started = process_usage(), time.perf_counter()
    loss, _ = train_epoch(model, optimizer, x, chosen.batch_size, torch.Generator().manual_seed(seed_value),
                          precision)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "loss": loss, "n_images": len(images),
            "usage": usage_during(used, process_usage(), seconds)}


def notebook_train(arch: str, data: Path, limit: str, cache: Path, seed: int) -> dict:
    """One epoch as the notebook ran it, in a process with none of the project's settings."""
    import torch

    from benchmarks import notebook_way as notebook

    dataset = notebook.dataset_class_for(data)
    root = notebook.torchvision_root(data, dataset, cache)
    keep = None
    if limit != "all":  # the same balanced subset the project's way trains on
        keep = limited_train_indices(data, limit)
    chosen = settings()
    notebook.seed_as_the_notebook(seed)
    model = params_model(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=chosen.lr)
    loader, test_loader = notebook.notebook_loaders(root, dataset, keep, chosen.batch_size)  # both held, as there
    used, started = process_usage(), time.perf_counter()
    loss = notebook.notebook_epoch(model, optimizer, loader)
    seconds = time.perf_counter() - started
    dataset_class = type(getattr(loader.dataset, "dataset", loader.dataset)).__name__
    return {"seconds": seconds, "loss": loss, "n_images": len(loader.dataset), "dataset_class": dataset_class,
            "n_test_images": len(test_loader.dataset),
            "process": notebook.process_settings(), "usage": usage_during(used, process_usage(), seconds)}


def worker_quality(arch: str, data: str, limit: str, precision: str, epochs: str) -> dict:
    """The test MSE after `epochs` epochs of the train stage's own fit(), for comparing precisions."""
    import torch

    from stages.common.models.allocator import keep_freed_memory_for_reuse
    from stages.common.models.device import check_precision, seed_everything
    from stages.common.models.training import fit, to_float_images, total_steps

    keep_freed_memory_for_reuse()
    cpu = torch.device("cpu")
    check_precision(precision, cpu)
    images, _ = load_train_images(Path(data), int(limit) if limit != "all" else None)
    test_images, _ = read_data_split(Path(data), "test")
    chosen = settings()
    seed_everything(chosen.seed)
    model = params_model(arch)
    started = time.perf_counter()
    steps = total_steps(len(images), chosen.batch_size, int(epochs), None)
    history = fit(model, to_float_images(images, cpu), to_float_images(test_images, cpu), steps,
                  chosen.batch_size, chosen.lr, chosen.seed, precision, chosen.encode_batch).history
    return {"test_mse": history[-1].test_mse, "seconds": time.perf_counter() - started, "n_images": len(images)}


def worker_flops(arch: str) -> dict:
    """FLOPs of one training step (forward + backward) on one batch of train.batch_size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode


    batch = settings().batch_size
    model = params_model(arch)
    x = torch.rand(batch, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model.loss_function(x)[0].backward()
    return {"flops_per_image": counter.get_total_flops() / batch}


def svm_features(latents: str, data: str):
    import numpy as np

    path = Path(latents)
    if path.is_file():
        with np.load(path) as f:
            return f["z_train"], f["y_train"], f["z_test"], f["y_test"], f"latents {path}"
    from sklearn.decomposition import PCA

    x, y = read_data_split(Path(data), "train")
    xt, yt = read_data_split(Path(data), "test")
    dim = settings().latent_dim
    pca = PCA(dim, random_state=settings().seed).fit(x.reshape(len(x), -1) / 255.0)
    project = lambda a: pca.transform(a.reshape(len(a), -1) / 255.0).astype(np.float32)  # noqa: E731
    return project(x), y, project(xt), yt, f"PCA-{dim} of {data} (no latents at {path})"


def worker_svm(way: str, latents: str, data: str) -> dict:
    import numpy as np

    z_train, y_train, z_test, y_test, source = svm_features(latents, data)
    if way == "plain":
        from sklearn.svm import SVC

        started = time.perf_counter()
        svm = settings().svm  # the notebook's plain SVC, with the kernel, C and gamma the stage uses
        model = SVC(kernel=svm["kernel"], C=svm["C"], gamma=svm["gamma"]).fit(z_train, y_train)
        accuracy = float(np.mean(model.predict(z_test) == y_test))
        seconds = time.perf_counter() - started
    else:
        from stages.common.evaluation.classify import fit_and_score

        metrics, _ = fit_and_score(z_train, y_train, z_test, y_test, 10, **settings().svm,
                                   confidence=settings().confidence)
        seconds, accuracy = metrics["fit_seconds"] + metrics["predict_seconds"], metrics["accuracy"]
    return {"seconds": seconds, "accuracy": accuracy, "features": source, "n_train": int(len(z_train))}


def worker_startup(stage: str) -> dict:
    started = time.perf_counter()
    __import__(f"stages.{stage}")
    return {"seconds": time.perf_counter() - started, "imports_torch": "torch" in sys.modules}


WORKERS = {"peak": worker_peak, "train": worker_train, "flops": worker_flops, "svm": worker_svm,
           "quality": worker_quality}


def worker_main(task: str, args: list) -> None:
    if task == "startup":
        # Whole-process start-up, as DVC pays it: interpreter plus the stage's imports.
        result = worker_startup(*args)
    else:
        result = WORKERS[task](*args)
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# ----------------------------------------------------------------------------- parent

def measure(task: str, *args) -> dict:
    before = machine_counters()  # first: its probe is not the process's time
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed", "worker", task, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    process_seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = process_seconds
    result["machine"] = machine_during(before, machine_counters())
    return result


def measure_literal(arch: str, data: Path, limit, cache: str, seed: int, env_extra: dict | None = None) -> dict:
    """One epoch of benchmarks/notebook_literal.py: the notebook's code, run as a script importing nothing of ours,
    started as from a fresh login shell (its environment, a new working folder), so that nothing this benchmark
    set in its own environment reaches it; `env_extra` adds variables to that environment on purpose."""
    import tempfile

    from benchmarks import notebook_way as notebook

    dataset = notebook.dataset_class_for(data)
    root = notebook.torchvision_root(data, dataset, Path(cache or NOTEBOOK_CACHE))
    chosen = settings()
    args = [arch, root, dataset, limit, seed, chosen.batch_size, chosen.lr, chosen.latent_dim]
    with tempfile.TemporaryDirectory() as scratch:
        if limit != "all":  # the same balanced subset the other ways train on
            import numpy as np

            keep = Path(scratch) / "keep.npy"
            np.save(keep, limited_train_indices(data, limit))
            args.append(keep)
        before = machine_counters()
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/notebook_literal.py"), *map(str, args)],
                              capture_output=True, text=True, cwd=scratch,
                              env={**login_shell_env(), **(env_extra or {})})
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "machine": machine_during(before, machine_counters())}


def best_peak(peaks: list) -> dict:
    return {key: max((p.get(key) or 0 for p in peaks), default=0) or None for key in ("fp32_gflops", "bf16_gflops")}


def median_of(results: list, key: str):
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_train(args, data: Path, limit, precisions: list, peaks: list) -> dict:
    """One epoch per architecture, each way and precision, alternating who goes first; medians and pair ratios.

    Round r trains every way with seed args.baseline_seeds[r % len]: the notebook way (benchmarks/notebook_way.py,
    in a worker of this benchmark) and the notebook's own code (benchmarks/notebook_literal.py, a script that
    imports nothing of ours) are two equivalent runs of the notebook, the same loss to the last bit; the round's
    baseline is the faster of the two, so no accident of one process makes the project look faster. Not a
    baseline but beside it: the notebook's code with glibc told to keep freed memory, as the train stage tells it
    (`literal_kept`), which shows what that one setting is worth and what the project gains beyond it."""
    from stages.common.models.allocator import freed_memory_kept_env

    out = {}
    for arch in args.archs:
        flops = measure("flops", arch)["flops_per_image"]
        runs = {("literal", "fp32"): [], ("notebook", "fp32"): [], ("literal_kept", "fp32"): [],
                **{("project", p): [] for p in precisions}}
        seeds = []
        for run in range(args.runs):
            seed = args.baseline_seeds[run % len(args.baseline_seeds)]
            seeds.append(seed)
            order = list(runs) if run % 2 == 0 else list(reversed(runs))  # alternate who goes first
            for way, precision in order:
                if way.startswith("literal"):
                    kept = freed_memory_kept_env() if way == "literal_kept" else None
                    result = measure_literal(arch, data, limit, args.torchvision_cache, seed, kept)
                else:
                    result = measure("train", way, arch, data, limit, precision, args.torchvision_cache, seed)
                runs[(way, precision)].append(result)
                print(f"  {arch} {way} {precision} run {run + 1} (seed {seed}): "
                      f"{result.get('seconds', result.get('error'))}", flush=True)
        peaks.append(measure("peak"))
        out[arch] = train_entry(runs, precisions, flops, seeds)
    return out


def train_entry(runs: dict, precisions: list, flops: float, seeds: list) -> dict:
    """Medians, the baseline (per round the faster notebook-way run), its check and the project's ratios."""
    notebook, literal = runs[("notebook", "fp32")], runs[("literal", "fp32")]
    entry = {"flops_per_image": flops, "n_images": median_of(notebook, "n_images"), "seeds": seeds}
    for (way, precision), results in runs.items():
        entry[f"{way}_{precision}"] = summary_of(results, flops, entry["n_images"])
    # The round's baseline: the faster of two equivalent runs of the notebook.
    baseline = [{"seconds": min(n["seconds"], lit["seconds"]),
                 "which": "notebook way" if n["seconds"] <= lit["seconds"] else "notebook's code"}
                if n.get("seconds") and lit.get("seconds") else {} for n, lit in zip(notebook, literal)]
    entry["baseline_fp32"] = {**summary_of(baseline, flops, entry["n_images"]),
                              "faster": [b.get("which") for b in baseline]}
    entry["process"] = {"notebook way": [r.get("process") for r in notebook],
                        "machine": {f"{way} {precision}": [r.get("machine") for r in results]
                                    for (way, precision), results in runs.items()},
                        # over each timed epoch: CPU seconds, cores kept busy, switches, page faults
                        "usage": {f"{way} {precision}": [r.get("usage") for r in results]
                                  for (way, precision), results in runs.items()}}
    # The check on the baseline: the notebook's code itself, run by the same pairs.
    checks = list(zip(notebook, literal))
    pairs = paired_ratios(notebook, literal)
    entry["baseline_vs_literal_paired"] = pairs
    entry["baseline_vs_literal"] = statistics.median(pairs) if pairs else None
    way, code = entry["notebook_fp32"]["seconds_per_epoch"], entry["literal_fp32"]["seconds_per_epoch"]
    entry["baseline_vs_literal_medians"] = way / code if way and code else None
    # Same weights, same batches, same arithmetic: the epoch's loss agrees to the last bit.
    entry["baseline_same_loss_as_literal"] = bool(checks) and all(
        n.get("loss") is not None and n.get("loss") == lit.get("loss") for n, lit in checks)
    entry["losses"] = {"notebook way": [n.get("loss") for n in notebook],
                       "notebook's code": [c.get("loss") for c in literal]}
    base = entry["baseline_fp32"]["seconds_per_epoch"]
    kept = runs.get(("literal_kept", "fp32"))
    if kept:  # what keeping freed memory alone does to the notebook, and what the project does beyond it
        entry["kept_vs_baseline_paired"] = paired_ratios(kept, baseline)
        for precision in precisions:
            entry[f"paired_ratios_{precision}_vs_kept"] = paired_ratios(runs[("project", precision)], kept)
    for precision in precisions:
        project = entry[f"project_{precision}"]["seconds_per_epoch"]
        entry[f"ratio_{precision}"] = project / base if project and base else None
        # Each run's pair ran back to back, so a slow spell of the host weighs on both.
        pairs = paired_ratios(runs[("project", precision)], baseline)
        entry[f"paired_ratios_{precision}"] = pairs
        entry[f"median_paired_ratio_{precision}"] = statistics.median(pairs) if pairs else None
    return entry


def paired_ratios(tops: list, bottoms: list) -> list:
    """Each round's ratio of two runs that ran back to back, where both ran."""
    return [t["seconds"] / b["seconds"] for t, b in zip(tops, bottoms) if t.get("seconds") and b.get("seconds")]


def summary_of(results: list, flops: float, n_images) -> dict:
    seconds = median_of(results, "seconds")
    return {"seconds_per_epoch": seconds, "runs": [r.get("seconds") for r in results],
            "peak_rss_mb": median_of(results, "peak_rss_mb"),
            "gflops": flops * n_images / seconds / 1e9 if seconds and n_images else None}


def measure_quality(args, data: Path, precisions: list) -> dict:
    """Deterministic, so one run each: does bf16 train as well as fp32?"""
    quality_limit = args.quality_limit or "all"
    report = {"epochs": args.quality_epochs, "train_limit": args.quality_limit, "archs": {}}
    for arch in args.archs:
        entry = {p: measure("quality", arch, data, quality_limit, p, args.quality_epochs) for p in precisions}
        fp32, bf16 = entry["fp32"].get("test_mse"), entry["bf16"].get("test_mse")
        entry["bf16_vs_fp32"] = bf16 / fp32 - 1 if fp32 and bf16 else None
        report["archs"][arch] = entry
        print(f"  {arch} {args.quality_epochs}-epoch test MSE: fp32 {fp32}, bf16 {bf16}", flush=True)
    return report


def run_benchmark(args) -> dict:
    import torch

    from stages.common.models.device import cpu_supports_bf16

    data = args.data or next((d for d in DEFAULT_DATA if d.is_dir()), None)
    if data is None:
        sys.exit("error: no data folder; pass --data DIR holding the four IDX .gz files")
    limit = args.train_limit or "all"
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "bf16_native": cpu_supports_bf16(), "torch": torch.__version__, **cpu_topology(),
                    # what every measured process inherits from this one
                    "inherited": inherited_state()},
        "data": str(data), "train_limit": args.train_limit, "runs": args.runs, "parts": args.parts,
        "settings": settings().__dict__,
    }
    print(f"benchmark on {data} ({limit} training images), {args.runs} runs each; {settings().describe()}",
          flush=True)
    # This kind of machine's clock and neighbours vary (one 2-core VM gave 216-317 GFLOP/s
    # in three runs, another 28-68 within an hour): the best of every try, three now and
    # one after each architecture, is the closest to what its cores can do.
    peaks = [measure("peak") for _ in range(3)]
    best = best_peak(peaks)
    print(f"matmul peak: {fmt(best['fp32_gflops'], '.0f')} GFLOP/s fp32, {fmt(best['bf16_gflops'], '.0f')} bf16",
          flush=True)
    precisions = ["fp32"] + (["bf16"] if cpu_supports_bf16() else [])
    report["train"] = measure_train(args, data, limit, precisions, peaks) if "train" in args.parts else {}
    report["peak"] = {**best_peak(peaks), "runs": peaks}
    for entry in report["train"].values():
        for precision in precisions:
            gflops, peak = entry[f"project_{precision}"]["gflops"], report["peak"]["fp32_gflops"]
            entry[f"project_{precision}"]["fraction_of_fp32_peak"] = gflops / peak if gflops and peak else None
    if not cpu_supports_bf16():
        report["bf16"] = "not measured: this CPU has neither AVX-512 BF16 nor AMX (train.precision bf16 is refused)"
    elif args.quality_epochs and "quality" in args.parts:
        report["quality"] = measure_quality(args, data, precisions)
    if "svm" in args.parts:
        report["svm"] = measure_svm(args.svm_runs, args.latents, data)
    if "startup" in args.parts:
        report["startup"] = measure_startup(args.runs)
    return report


def measure_svm(n_runs: int, latents: str, data: Path) -> dict:
    svm = {"plain": [], "project": []}
    for run in range(n_runs):
        for way in (("plain", "project") if run % 2 == 0 else ("project", "plain")):
            result = measure("svm", way, latents, data)
            svm[way].append(result)
            print(f"  svm {way} run {run + 1}: {result.get('seconds', result.get('error'))}", flush=True)
    report = {way: {"seconds": median_of(results, "seconds"), "runs": [r.get("seconds") for r in results],
                     "accuracy": median_of(results, "accuracy"), "peak_rss_mb": median_of(results, "peak_rss_mb"),
                     "features": results[0].get("features")} for way, results in svm.items()}
    if report["plain"]["seconds"] and report["project"]["seconds"]:
        report["ratio"] = report["project"]["seconds"] / report["plain"]["seconds"]
    return report


def measure_startup(n_runs: int) -> dict:
    report = {}
    for stage in TORCH_FREE_STAGES:
        results = [measure("startup", stage) for _ in range(n_runs)]
        report[stage] = {"process_seconds": median_of(results, "process_seconds"),
                         "import_seconds": median_of(results, "seconds"),
                         "imports_torch": any(r.get("imports_torch") for r in results)}
    return report


def fmt(value, spec=".2f"):
    return "–" if value is None else format(value, spec)


def paired_cell(entry: dict, precision: str, key: str | None = None) -> str:
    """The median paired ratio and, beside it, the range of the rounds' ratios: with a few rounds, the honest
    spread (a goal is met only if the whole range is under it). `key` names another list of paired ratios."""
    pairs = entry.get(key or f"paired_ratios_{precision}") or []
    spread = f" ({min(pairs):.2f}–{max(pairs):.2f})" if len(pairs) > 1 else ""
    return fmt(statistics.median(pairs) if pairs else None) + spread


def faults_cell(entry: dict, ways: tuple = ("literal fp32", "literal_kept fp32", "project fp32")) -> str:
    """Median page faults (millions) and kernel seconds of an epoch, way by way: the cost glibc's default allocator
    adds, served in the kernel."""
    usage = entry.get("process", {}).get("usage", {})
    cells = []
    for way in ways:
        runs = [u for u in usage.get(way) or [] if u]
        faults = [u["minor_faults"] / 1e6 for u in runs if "minor_faults" in u]
        system = [u["system_seconds"] for u in runs if "system_seconds" in u]
        cells.append(f"{fmt(statistics.median(faults) if faults else None, '.2f')}M "
                     f"{fmt(statistics.median(system) if system else None, '.1f')}s")
    return " / ".join(cells)


def table(report: dict) -> str:
    lines = [f"machine: {report['machine']}", f"data: {report['data']}, train_limit {report['train_limit']}, "
             f"median of {report['runs']} runs",
             f"matmul peak: fp32 {fmt(report['peak'].get('fp32_gflops'), '.0f')} GFLOP/s, "
             f"bf16 {fmt(report['peak'].get('bf16_gflops'), '.0f')} GFLOP/s"]
    if report["train"]:
        lines += ["", "| architecture | notebook's code s | notebook way s | way / code: medians, paired | same loss "
                  "| baseline s (faster per round) | project fp32 s (ratio) | median paired ratio fp32 (rounds' range) "
                  "| project bf16 s (ratio) | median paired ratio bf16 (rounds' range) | FLOP-limit s fp32 / bf16 "
                  "| fp32 share of limit | RSS MB notebook / project | notebook's code, freed memory kept s "
                  "(paired / baseline) | project fp32 / it, paired | page faults, kernel s: code / kept / project |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fp32_peak, bf16_peak = report["peak"].get("fp32_gflops"), report["peak"].get("bf16_gflops")
    for arch, entry in report["train"].items():
        nb, pr, bf = entry["notebook_fp32"], entry["project_fp32"], entry.get("project_bf16", {})
        flops = entry["flops_per_image"] * (entry.get("n_images") or 0)
        limit32 = flops / fp32_peak / 1e9 if fp32_peak else None
        limit16 = flops / bf16_peak / 1e9 if bf16_peak and bf else None
        share = limit32 / pr["seconds_per_epoch"] if limit32 and pr["seconds_per_epoch"] else None
        literal = entry.get("literal_fp32", {})
        lines.append(f"| {arch} | {fmt(literal.get('seconds_per_epoch'), '.1f')} | "
                     f"{fmt(nb['seconds_per_epoch'], '.1f')} | {fmt(entry.get('baseline_vs_literal_medians'))}, "
                     f"{fmt(entry.get('baseline_vs_literal'))} | "
                     f"{'yes' if entry.get('baseline_same_loss_as_literal') else 'NO'} | "
                     f"{fmt(entry['baseline_fp32']['seconds_per_epoch'], '.1f')} | "
                     f"{fmt(pr['seconds_per_epoch'], '.1f')} ({fmt(entry.get('ratio_fp32'))}) | "
                     f"{paired_cell(entry, 'fp32')} | "
                     f"{fmt(bf.get('seconds_per_epoch'), '.1f')} ({fmt(entry.get('ratio_bf16'))}) | "
                     f"{paired_cell(entry, 'bf16')} | "
                     f"{fmt(limit32, '.1f')} / {fmt(limit16, '.1f')} | "
                     f"{'–' if share is None else format(share, '.0%')} | "
                     f"{fmt(nb['peak_rss_mb'], '.0f')} / {fmt(pr['peak_rss_mb'], '.0f')} | "
                     f"{fmt(entry.get('literal_kept_fp32', {}).get('seconds_per_epoch'), '.1f')} "
                     f"({paired_cell(entry, 'fp32', 'kept_vs_baseline_paired')}) | "
                     f"{paired_cell(entry, 'fp32', 'paired_ratios_fp32_vs_kept')} | {faults_cell(entry)} |")
    if "bf16" in report:
        lines.append(f"\nbf16: {report['bf16']}")
    if "quality" in report:
        quality = report["quality"]
        lines += ["", f"test MSE after {quality['epochs']} epochs on {quality['train_limit'] or 'all'} training "
                  "images:", "| architecture | fp32 | bf16 | bf16 vs fp32 |", "|---|---|---|---|"]
        for arch, entry in quality["archs"].items():
            change = entry["bf16_vs_fp32"]
            lines.append(f"| {arch} | {fmt(entry['fp32'].get('test_mse'), '.6f')} | "
                         f"{fmt(entry['bf16'].get('test_mse'), '.6f')} | "
                         f"{'–' if change is None else format(change, '+.1%')} |")
    if "svm" in report:
        svm = report["svm"]
        lines += ["", f"SVM on {svm['plain'].get('features')}:",
                  "| way | fit + predict s | accuracy | peak RSS MB |", "|---|---|---|---|"]
        for way, label in (("plain", "plain SVC.fit + predict"), ("project", "svm stage (sklearnex)")):
            lines.append(f"| {label} | {fmt(svm[way]['seconds'])} | {fmt(svm[way]['accuracy'], '.4f')} | "
                         f"{fmt(svm[way]['peak_rss_mb'], '.0f')} |")
        lines.append(f"ratio: {fmt(svm.get('ratio'))}")
    if "startup" in report:
        lines += ["", "| stage | process start + imports s | imports s | imports torch |", "|---|---|---|---|"]
        for stage, entry in report["startup"].items():
            lines.append(f"| {stage} | {fmt(entry['process_seconds'])} | {fmt(entry['import_seconds'])} | "
                         f"{entry['imports_torch']} |")
    return "\n".join(lines)


def main(argv: list) -> None:
    if argv[:1] == ["worker"]:
        return worker_main(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder with the four IDX .gz files (default: Fashion-MNIST "
                        "from the Debian package, else ../shared/data/mnist-small)")
    parser.add_argument("--runs", type=int, default=3, help="runs per training measurement (median)")
    parser.add_argument("--baseline-seeds", type=int, nargs="+", default=[42, 43, 44],
                        help="seeds of the rounds, in turn (default 42 43 44; the notebook's is 42)")
    parser.add_argument("--svm-runs", type=int, default=2, help="runs per SVM measurement (median)")
    parser.add_argument("--train-limit", type=int, help="train on this many images (default: all)")
    parser.add_argument("--archs", nargs="+", default=list(ARCH_IDS))
    parser.add_argument("--quality-epochs", type=int, default=5,
                        help="epochs for the fp32-vs-bf16 test MSE comparison (0: skip it)")
    parser.add_argument("--quality-limit", type=int, default=10000,
                        help="training images for that comparison (default 10000)")
    parser.add_argument("--latents", default=str(ROOT / "data/latents/conv.npz"),
                        help="latents for the SVM timing (default: the pipeline's Conv AE latents)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default: all; the matmul peak is always measured)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/speed.json")
    parser.add_argument("--torchvision-cache", type=Path, default=NOTEBOOK_CACHE,
                        help="where the notebook way finds the IDX files decompressed, as torchvision reads them")
    args = parser.parse_args(argv)
    report = run_benchmark(args)
    from stages.common.outputs.atomic import write_json

    write_json(args.out, report)
    print(table(report))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
