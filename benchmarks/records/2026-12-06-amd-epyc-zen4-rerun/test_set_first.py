"""The notebook makes its test set before it trains (notebook-facts: a shuffled training loader and an unshuffled
test loader); benchmarks/notebook_literal.py, as it stood, made only the training set. Does making the test set too
change the training epoch's page faults? The notebook's code (LIMIT images, seed 42) in a process that first makes
torchvision's test set (reading its 10,000 images, as the notebook's data cell does), against one that does not,
both finding the files decompressed, alternating, N pairs; then the pairs' ratios as extract_first.py gives them.

    python benchmarks/records/2026-12-06-amd-epyc-zen4-rerun/test_set_first.py N TORCHVISION_ROOT [LIMIT]

TORCHVISION_ROOT: the benchmark's decompressed folder (benchmarks/.torchvision/fashion-mnist-*).
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
from torchvision import datasets, transforms
if sys.argv[1] == "yes":
    test_dataset = datasets.FashionMNIST(root=sys.argv[2], train=False, download=False, transform=transforms.ToTensor())
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(test_set: bool, root: Path, limit: str, keep: Path | None) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory() as fresh:
        proc = subprocess.run([sys.executable, "-c", CHILD, "yes" if test_set else "no", str(root),
                               str(ROOT / "benchmarks/notebook_literal.py"), "superres", str(root), "fashion-mnist",
                               limit, "42", "128", "0.001", "64", *([str(keep)] if keep else [])],
                              capture_output=True, text=True, env=env, cwd=fresh, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(pairs: int, root: Path, limit: str) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks.interleave import paired_ratio

    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        keep = None if limit == "all" else Path(scratch) / "keep.npy"
        if keep:
            np.save(keep, np.arange(int(limit)))
        for number in range(pairs):
            rounds.append({})
            for test_set in ((True, False) if number % 2 == 0 else (False, True)):
                result = run(test_set, root, limit, keep)
                usage = result["usage"]
                rounds[-1]["with" if test_set else "without"] = {"seconds": result["seconds"],
                                                                 "faults": usage["minor_faults"]}
                print(f"pair {number + 1} {'test-set-made' if test_set else 'training-set-only'} "
                      f"{result['seconds']:.2f}s faults {usage['minor_faults'] / 1e3:.0f}k "
                      f"sys {usage['system_seconds']:.2f} loss {result['loss']!r}", flush=True)
    for what in ("seconds", "faults"):
        found = paired_ratio(rounds, ("with", what), ("without", what))
        low, high = found["interval"]
        print(f"{what}, test set made first / training set only: {found['geometric_mean']:.3f} (95% {low:.3f}-"
              f"{high:.3f}), Wilcoxon p {found['wilcoxon_p']:.3g}, ratios "
              f"{', '.join(format(x, '.2f') for x in found['ratios'])}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]).resolve(), sys.argv[3] if len(sys.argv) > 3 else "5000")
