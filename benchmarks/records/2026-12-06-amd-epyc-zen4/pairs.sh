#!/bin/bash
# Issue #34's independent notebook script against the notebook's code, alone, alternating, full Fashion-MNIST.
# Run from the project root after the benchmark has decompressed the data (benchmarks/.torchvision/): each run
# starts from a clean environment in a new empty folder, after a 5 s pause. Prints one line a run.
ROOT=$(pwd); P=$ROOT/.venv/bin/python; R=$(ls -d "$ROOT"/benchmarks/.torchvision/fashion-mnist-*/ | head -1)
cd "$(mktemp -d)" || exit 1
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then order="ind lit"; else order="lit ind"; fi
  for w in $order; do
    sleep 5
    if [ $w = ind ]; then
      echo "independent $(env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 "$P" \
        "$ROOT"/benchmarks/records/2026-12-06-amd-epyc-zen4/independent_notebook.py "$R")"
    else
      echo "literal $(env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 "$P" "$ROOT"/benchmarks/notebook_literal.py \
        superres "$R" fashion-mnist all 42 128 0.001 64)"
    fi
  done
done
echo finished
