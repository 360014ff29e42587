"""The paired ratio of a pairs.sh log (../2026-12-06-amd-epyc-zen4/pairs.sh: the issue's independent script and
the notebook's code, alternating): independent / notebook's code per pair, as benchmarks/interleave.py pairs.

    python benchmarks/records/2026-12-06-amd-epyc-zen4-rerun/pairs_summary.py LOG
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from benchmarks.interleave import paired_ratio  # noqa: E402

runs = {"independent": [], "literal": []}
for line in Path(sys.argv[1]).read_text().splitlines():
    name, _, payload = line.partition(" ")
    if name in runs:
        record = json.loads(payload)
        faults = record.get("minor_faults", record.get("usage", {}).get("minor_faults"))
        runs[name].append({"seconds": record["seconds"], "faults": faults})
rounds = [{"independent": i, "literal": lit} for i, lit in zip(runs["independent"], runs["literal"])]
for name, found in runs.items():
    seconds = sorted(r["seconds"] for r in found)
    print(f"{name}: {len(found)} runs, {seconds[0]:.1f}-{seconds[-1]:.1f} s, faults "
          f"{min(r['faults'] for r in found) / 1e6:.2f}-{max(r['faults'] for r in found) / 1e6:.2f} M")
for what in ("seconds", "faults"):
    found = paired_ratio(rounds, ("independent", what), ("literal", what))
    low, high = found["interval"]
    print(f"{what}, independent / notebook's code: {found['geometric_mean']:.3f} (95% {low:.3f}-{high:.3f}), "
          f"Wilcoxon p {found['wilcoxon_p']:.3g}, ratios {', '.join(format(x, '.2f') for x in found['ratios'])}")
