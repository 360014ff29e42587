#!/bin/bash
# Is it the threads? The same run as arenas.sh (5,000 images, seed 42) with glibc as it comes, on torch's one
# thread (OMP_NUM_THREADS=1) and on its default two, in turn, N rounds (threads.log): one thread's mallocs and
# frees come in one order every time; two threads' interleave as their timing falls. Run from the project root
# once the benchmark has decompressed the data.
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
  sleep 3; lit one-thread env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 OMP_NUM_THREADS=1
  sleep 3; lit two-threads env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8
done
