#!/bin/bash
# Why does the same run of the notebook's code take a different number of page faults in each process? The same
# run (5,000 images, seed 42) started three ways, in turn, N rounds (arenas.log): with glibc as it comes; with
# one malloc arena for all its threads (MALLOC_ARENA_MAX=1: its worker threads cannot allocate in arenas of their
# own, whose use depends on timing); with address-space randomisation off (setarch -R: the same addresses in every
# process). Run from the project root once the benchmark has decompressed the data.
N=${1:-8}
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
  sleep 3; lit as-it-comes env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8
  sleep 3; lit one-arena env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 MALLOC_ARENA_MAX=1
  sleep 3; lit no-aslr env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 setarch "$(uname -m)" -R
done
