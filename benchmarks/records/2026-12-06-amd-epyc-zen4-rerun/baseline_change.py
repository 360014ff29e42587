"""What the baseline's change does on the issue's own measurement: benchmarks/notebook_literal.py as it is (its
data cell makes the test set before training, as the notebook's does) against the same script as it stood before
(training set only, `git show 8a549c4:benchmarks/notebook_literal.py`), Super-Resolution AE, the whole training
set, seed 42, each a fresh interpreter from a clean environment, alternating, N pairs (baseline_change.log); then
the pairs' ratios as benchmarks/interleave.py pairs its rounds.

    python benchmarks/records/2026-12-06-amd-epyc-zen4-rerun/baseline_change.py N TORCHVISION_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(script: Path, root: Path) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory() as fresh:
        proc = subprocess.run([sys.executable, str(script), "superres", str(root), "fashion-mnist", "all", "42", "128",
                               "0.001", "64"], capture_output=True, text=True, env=env, cwd=fresh, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(pairs: int, root: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.interleave import paired_ratio

    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        before = Path(scratch) / "notebook_literal_before.py"
        before.write_text(subprocess.run(["git", "show", "8a549c4:benchmarks/notebook_literal.py"], cwd=ROOT,
                                         capture_output=True, text=True, check=True).stdout)
        scripts = {"test-set-made": ROOT / "benchmarks/notebook_literal.py", "training-set-only": before}
        for number in range(pairs):
            rounds.append({})
            order = list(scripts) if number % 2 == 0 else list(reversed(scripts))
            for name in order:
                result = run(scripts[name], root)
                usage = result["usage"]
                rounds[-1][name] = {"seconds": result["seconds"], "faults": usage["minor_faults"]}
                print(f"pair {number + 1} {name} {result['seconds']:.2f}s faults {usage['minor_faults'] / 1e3:.0f}k "
                      f"sys {usage['system_seconds']:.2f} loss {result['loss']!r}", flush=True)
    for what in ("seconds", "faults"):
        found = paired_ratio(rounds, ("test-set-made", what), ("training-set-only", what))
        low, high = found["interval"]
        print(f"{what}, test set made (now) / training set only (before): {found['geometric_mean']:.3f} "
              f"(95% {low:.3f}-{high:.3f}), Wilcoxon p {found['wilcoxon_p']:.3g}, ratios "
              f"{', '.join(format(x, '.2f') for x in found['ratios'])}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]).resolve())
