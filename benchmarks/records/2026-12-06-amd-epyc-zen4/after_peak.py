"""Is the notebook's code slower straight after the benchmark's matrix-multiply peak workers? (after_peak.log)

    python benchmarks/records/2026-12-06-amd-epyc-zen4/after_peak.py ROUNDS

With `--runs 1`, the interleaved check's leg inside the benchmark always runs the notebook's code first, straight
after three `benchmarks.speed worker peak` processes. Each round here runs the notebook's code (Super-Resolution AE,
20,000 images, as the benchmark starts it) once after a 5 s pause and once straight after three peak workers,
alternating which goes first, and prints both with their page faults and kernel seconds, then the paired ratio's
geometric mean and 95% interval. Run from the project root on the whole Fashion-MNIST.
"""
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))
from scipy import stats  # noqa: E402

from benchmarks.speed import NOTEBOOK_CACHE, measure_literal  # noqa: E402

DATA = Path("/usr/share/datasets/fashion-mnist")


def notebook(after_peak: bool) -> dict:
    if after_peak:
        for _ in range(3):
            subprocess.run([sys.executable, "-m", "benchmarks.speed", "worker", "peak"], cwd=ROOT,
                           capture_output=True, check=True)
    else:
        time.sleep(5)
    return measure_literal("superres", DATA, "20000", str(NOTEBOOK_CACHE), 42)


ratios = []
for number in range(int(sys.argv[1])):
    runs = {}
    for after_peak in ((True, False) if number % 2 == 0 else (False, True)):
        runs[after_peak] = notebook(after_peak)
    for after_peak, run in runs.items():
        used = run["usage"]
        print(f"round {number + 1} {'after peak' if after_peak else 'after pause'}: {run['seconds']:.2f} s, "
              f"{used['minor_faults'] / 1e6:.2f} M faults, {used['system_seconds']:.1f} kernel s", flush=True)
    ratios.append(runs[True]["seconds"] / runs[False]["seconds"])
logs = [math.log(r) for r in ratios]
half = stats.t.ppf(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
mean = statistics.fmean(logs)
print(f"after peak / after pause: {math.exp(mean):.3f} (95% {math.exp(mean - half):.3f}-{math.exp(mean + half):.3f}), "
      f"Wilcoxon p {stats.wilcoxon(logs).pvalue:.3g}, ratios {', '.join(f'{r:.2f}' for r in ratios)}")
