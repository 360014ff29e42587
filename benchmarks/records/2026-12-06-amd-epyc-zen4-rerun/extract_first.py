"""Does how the dataset's files are read change the notebook's page faults? Issue #34's candidate "the torchvision
cache folder and how its files are read", on the allocator's side: the notebook's code (LIMIT images, seed 42) in a
process that first decompresses the four .gz files itself into a fresh torchvision folder (as torchvision's
`download=True` does on a user's first run: large buffers made and freed before training), against one that finds
them decompressed (as the benchmark gives them), alternating, N pairs; then the pairs' ratios of seconds and of
page faults (decompressed first / found decompressed) as benchmarks/interleave.py pairs its rounds.

    python benchmarks/records/2026-12-06-amd-epyc-zen4-rerun/extract_first.py N GZ_FOLDER [LIMIT]

LIMIT: the first LIMIT images of the training set (default 5000), or "all".

Each run is a fresh interpreter from a clean environment; the notebook's code is benchmarks/notebook_literal.py,
run in that same interpreter after the decompression (runpy), so it starts from the heap the decompression left.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CHILD = """
import runpy, sys
from pathlib import Path
from torchvision.datasets.utils import extract_archive
root, gz, extract = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "yes"
raw = root / "FashionMNIST" / "raw"
raw.mkdir(parents=True, exist_ok=True)
for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
    if extract:
        extract_archive(str(gz / (name + ".gz")), str(raw))
sys.argv = [sys.argv[4], *sys.argv[5:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(extract: bool, gz: Path, ready: Path, limit: str, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as fresh:
        root = Path(fresh) if extract else ready
        env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
        proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(gz), "yes" if extract else "no",
                               str(ROOT / "benchmarks/notebook_literal.py"), "superres", str(root), "fashion-mnist",
                               limit, "42", "128", "0.001", "64", *([str(keep)] if keep else [])],
                              capture_output=True, text=True, env=env, cwd=fresh, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(pairs: int, gz: Path, limit: str) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks.interleave import paired_ratio

    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        ready, keep = Path(scratch) / "ready", None if limit == "all" else Path(scratch) / "keep.npy"
        if keep:
            np.save(keep, np.arange(int(limit)))
        # the folder the other leg finds decompressed: the child's first half, decompressing only
        subprocess.run([sys.executable, "-c", CHILD.split("sys.argv = ")[0], str(ready), str(gz), "yes"], check=True)
        for number in range(pairs):
            rounds.append({})
            for extract in ((True, False) if number % 2 == 0 else (False, True)):
                result = run(extract, gz, ready, limit, keep)
                usage = result["usage"]
                rounds[-1]["first" if extract else "found"] = {"seconds": result["seconds"],
                                                               "faults": usage["minor_faults"]}
                print(f"pair {number + 1} {'decompressed-first' if extract else 'found-decompressed'} "
                      f"{result['seconds']:.2f}s faults {usage['minor_faults'] / 1e3:.0f}k "
                      f"sys {usage['system_seconds']:.2f} loss {result['loss']!r}", flush=True)
    for what in ("seconds", "faults"):
        found = paired_ratio(rounds, ("first", what), ("found", what))
        low, high = found["interval"]
        print(f"{what}, decompressed first / found decompressed: {found['geometric_mean']:.3f} (95% {low:.3f}-"
              f"{high:.3f}), Wilcoxon p {found['wilcoxon_p']:.3g}, ratios "
              f"{', '.join(format(x, '.2f') for x in found['ratios'])}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "5000")
