#!/usr/bin/env bash
# Encoder speed on one GPU in one call (a few minutes on an H200): a random-weight 2B-shaped model,
# first gen and disc throughput beside the authors' style, then continuous batching: every item
# stopped at a length drawn from 200-600, gen decoded batch after batch and with refill.
# Reports (JSON) and logs go to $OUT (default benchmarks/results/gpu).
#
#   OUT=/some/dir benchmarks/gpu_check.sh     # on the GPU machine
#   benchmarks/gpu_check.sh --smoke           # the same steps, tiny model and sizes, on a CPU
#
# It needs the project's pinned torch and transformers (pyproject.toml); versions.txt records
# what ran.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if [[ "${1:-}" == "--smoke" ]]; then
    model=(--preset tiny --device cpu --image-size 56)
    plain=(--new-tokens 8 --items 8 --batch-size 8 --baseline-items 2)
    stops=(--new-tokens 8 --items 12 --batch-size 4 --stop-lengths 2-12)
else
    model=(--preset 2b --image-size 448)
    plain=(--new-tokens 400 --items 512 --batch-size 512 --baseline-items 4)
    # More items than one batch holds: refill needs waiting items to matter.
    stops=(--new-tokens 400 --items 2048 --batch-size 512 --stop-lengths 200-600)
fi

"$PYTHON" -c 'import torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__,
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")' \
    | tee "$OUT/versions.txt"
"$PYTHON" benchmarks/encode.py "${model[@]}" "${plain[@]}" --out "$OUT/encode.json" 2>&1 \
    | grep -v -e "Loading weights" -e "Writing model" | tee "$OUT/encode.log"
"$PYTHON" benchmarks/encode.py "${model[@]}" "${stops[@]}" --out "$OUT/continuous_batching.json" 2>&1 \
    | grep -v -e "Loading weights" -e "Writing model" | tee "$OUT/continuous_batching.log"
