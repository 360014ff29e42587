#!/bin/bash
# After a pause, back to back, or straight after a process that freed 3 GB: what a page fault of the notebook's
# code costs (fresh.log). Run from the project root once the benchmark has decompressed the data.
P=$(pwd)/.venv/bin/python; R=$(ls -d "$(pwd)"/benchmarks/.torchvision/fashion-mnist-*/ | head -1)
LITERAL=$(pwd)/benchmarks/notebook_literal.py
cd "$(mktemp -d)" || exit 1
"$P" -c "import numpy as np; np.save('keep5000.npy', np.arange(5000))"
lit() {
  env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 "$P" "$LITERAL" superres "$R" fashion-mnist 5000 42 128 0.001 64 \
    keep5000.npy | "$P" -c "import json, sys; d = json.loads(sys.stdin.read()); u = d['usage']; print(f\"$1 \
{d['seconds']:.2f}s faults {u['minor_faults']/1e3:.0f}k sys {u['system_seconds']:.2f} us/fault \
{u['system_seconds']/u['minor_faults']*1e6:.2f}\")"
}
for i in 1 2 3; do
  sleep 10; lit pause10
  lit backtoback
  "$P" -c "import numpy as np; a = np.ones(3 * 2**30 // 8)"; lit after3GBfree
done
