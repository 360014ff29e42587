#!/bin/bash
# One thread still varies (threads.log). What else differs from process to process? The same run (5,000 images,
# seed 42) on one thread with Python's hash seed fixed (PYTHONHASHSEED=0: dicts and sets iterate, and Python
# allocates, in one order every time), and with address-space randomisation off as well, in turn, N rounds
# (hashseed.log). Run from the project root once the benchmark has decompressed the data.
N=${1:-4}
P=$(pwd)/.venv/bin/python; R=$(ls -d "$(pwd)"/benchmarks/.torchvision/fashion-mnist-*/ | head -1)
LITERAL=$(pwd)/benchmarks/notebook_literal.py
cd "$(mktemp -d)" || exit 1
"$P" -c "import numpy as np; np.save('keep5000.npy', np.arange(5000))"
lit() {
  "${@:2}" "$P" "$LITERAL" superres "$R" fashion-mnist 5000 42 128 0.001 64 keep5000.npy | "$P" -c "import json, \
sys; d = json.loads(sys.stdin.read()); u = d['usage']; print(f\"$1 {d['seconds']:.2f}s faults \
{u['minor_faults']/1e3:.0f}k sys {u['system_seconds']:.2f} user {u['cpu_seconds'] - u['system_seconds']:.2f} \
loss {d['loss']!r}\")"
}
for i in $(seq "$N"); do
  sleep 3; lit one-thread-hash0 env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 OMP_NUM_THREADS=1 PYTHONHASHSEED=0
  sleep 3; lit one-thread-hash0-no-aslr env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 OMP_NUM_THREADS=1 \
    PYTHONHASHSEED=0 setarch "$(uname -m)" -R
done
