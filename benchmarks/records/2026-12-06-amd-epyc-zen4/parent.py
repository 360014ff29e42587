"""Does the process that starts the notebook's code change what its page faults cost? (parent.log)

    python benchmarks/records/2026-12-06-amd-epyc-zen4/parent.py plain|torch|torchwork KEEP_NPY

Starts benchmarks/notebook_literal.py (Super-Resolution AE, the first 5,000 Fashion-MNIST training images, the
indices in KEEP_NPY) twice from this process: a bare Python (`plain`), one that has imported torch (`torch`), or one
that has run torch's threads on matrix products (`torchwork`); prints each run's seconds, page faults and kernel
CPU seconds a fault. Run from the project root once the benchmark has decompressed the data.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

mode, keep = sys.argv[1], sys.argv[2]
if mode in ("torch", "torchwork"):
    import torch

    if mode == "torchwork":
        a = torch.randn(2048, 2048)
        [a @ a for _ in range(20)]
ROOT = Path.cwd()
data = next((ROOT / "benchmarks" / ".torchvision").glob("fashion-mnist-*"))
env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
for _ in range(2):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/notebook_literal.py"), "superres", str(data),
                          "fashion-mnist", "5000", "42", "128", "0.001", "64", keep],
                         capture_output=True, text=True, env=env).stdout
    run = json.loads(out.strip().splitlines()[-1])
    used = run["usage"]
    print(f"{mode} {run['seconds']:.2f}s faults {used['minor_faults'] / 1e3:.0f}k sys {used['system_seconds']:.2f} "
          f"us/fault {used['system_seconds'] / used['minor_faults'] * 1e6:.2f}", flush=True)
