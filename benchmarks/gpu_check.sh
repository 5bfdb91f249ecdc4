#!/usr/bin/env bash
# Speed on one GPU, in parts that each fit one device call (at most 10 minutes a call):
#
#   encode   throughput (benchmarks/encode.py): a random-weight 2B-shaped model, gen and disc
#            items/s at batch 512 beside the authors' style, then continuous batching (every item
#            stopped at a length drawn from 200-600, batch after batch against refill).
#   latency  one query at a time (benchmarks/latency.py): fast text query -> disc, a 448-px image
#            query -> disc, a reasoning query forced to stop at 100/200/300 tokens and streamed
#            through the search service's callback, per decode loop, beside `model.generate`.
#   train    one real-size training step at 2B (benchmarks/train_step.py): SFT with a pool of 256
#            pairs in GradCache chunks of 16; GRPO with 16 pairs x 8 rollouts of 256 tokens.
#
#   OUT=/some/dir benchmarks/gpu_check.sh encode          # first call on the GPU machine
#   OUT=/some/dir benchmarks/gpu_check.sh latency train   # second call
#   benchmarks/gpu_check.sh --smoke                       # every part, tiny model and sizes, on a CPU
#
# No part names every part. Reports (JSON) and one log per part go to $OUT (default
# benchmarks/results/gpu): encode.json, continuous_batching.json, latency.json, train_sft.json,
# train_rl.json and encode.log, latency.log, train.log (eight files for all parts). Each log starts
# with the torch and transformers versions that ran (the project pins them in pyproject.toml).
#
# Time on an H200 (about 790 TFLOP/s of bf16 matrix work, 4.8 TB/s), estimated, not measured:
#   encode   ~4 min. From encode-h200.json: 512 items x 400 tokens at ~56 items/s (~10 s),
#            the authors' style on 4 items at 0.16 items/s (~25 s), 2 x 2048 items of 200-600
#            tokens at ~55 items/s (~75 s), plus preparing 2,560 images and building the model twice.
#   latency  ~3 min. Batch-1 decoding waits on kernel launches, not FLOPs: at ~25 ms a token
#            eager and ~5 ms replayed from a CUDA graph (a guess), 600 tokens x 3 repeats for
#            each of the two eager rows, the graph row, and once for `model.generate` (~50 ms a
#            token, from encode-h200.json's 0.14 items/s at batch 4): ~2 min, plus ~30 s of fast queries.
#   train    ~3.5 min. SFT: ~1,500 tokens a pair (byte-level prompts) x 256 pairs = ~0.4 M
#            tokens; GradCache runs one forward without and one with gradients (4 forwards' worth)
#            at 2 x ~1.5 G FLOP a token, plus the vision tower on 256 x 1,024 patches: ~6 PFLOP,
#            ~20 s a step at ~40% of peak, two steps (one warm-up). GRPO: 128 rollouts x 256
#            sampled tokens at ~25 ms a step (~7 s), scoring 128 x ~1,100 tokens with backward
#            (~2 PFLOP, ~5 s): ~15 s a step, two steps. Plus building and saving the random 2B
#            checkpoint once (~1 min on the CPUs) and loading it twice.
# Each step has a time limit (below) so that one slow step cannot take the whole call; the
# scripts write their JSON as they go, so a step that is stopped keeps what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

smoke=0
parts=()
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 ;;
        encode | latency | train) parts+=("$arg") ;;
        all) parts+=(encode latency train) ;;
        *)
            echo "usage: $0 [encode|latency|train|all]... [--smoke]" >&2
            exit 2
            ;;
    esac
done
((${#parts[@]})) || parts=(encode latency train)
mkdir -p "$OUT"

if ((smoke)); then
    model=(--preset tiny --device cpu --image-size 56)
    plain=(--new-tokens 8 --items 8 --batch-size 8 --baseline-items 2)
    stops=(--new-tokens 8 --items 12 --batch-size 4 --stop-lengths 2-12)
    latency=(--repeats 3 --image-repeats 2 --warmup 1 --stop-lengths 8,16 --reasoning-repeats 1)
    sft=(--pairs 8 --chunk 4 --completion-chars 80 --steps 1)
    rl=(--pairs 2 --group 2 --new-tokens 8 --steps 1)
    limit_encode=300 limit_stops=300 limit_latency=300 limit_sft=300 limit_rl=300
else
    model=(--preset 2b --image-size 448)
    plain=(--new-tokens 400 --items 512 --batch-size 512 --baseline-items 4)
    # More items than one batch holds: refill needs waiting items to matter.
    stops=(--new-tokens 400 --items 2048 --batch-size 512 --stop-lengths 200-600)
    latency=(--repeats 50 --image-repeats 20 --warmup 5 --stop-lengths 100,200,300 --reasoning-repeats 3)
    sft=(--pairs 256 --chunk 16 --steps 1)
    rl=(--pairs 16 --group 8 --new-tokens 256 --steps 1)
    # Over 1.5x each estimate above; a part's limits add up to at most 8.5 minutes.
    limit_encode=180 limit_stops=270 limit_latency=210 limit_sft=180 limit_rl=120
fi
failed=0

# versions LOG: start the part's log with what runs it.
versions() {
    "$PYTHON" -c 'import torch, transformers
print("torch", torch.__version__, "transformers", transformers.__version__,
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")' 2>&1 | tee "$1"
}

# step SECONDS LOG COMMAND...: run the command for at most SECONDS, its output (less progress
# bars) on the terminal and appended to LOG; a failure is noted and the next step still runs.
step() {
    local limit=$1 log=$2
    shift 2
    echo "+ $*" | tee -a "$log"
    timeout -k 15 "$limit" "$@" 2>&1 | grep --line-buffered -v -e "Loading weights" -e "Writing model" | tee -a "$log"
    local status=${PIPESTATUS[0]}
    if ((status != 0)); then
        local why=""
        ((status == 124)) && why=" (stopped after ${limit} s)"
        echo "! exit status ${status}${why}" | tee -a "$log"
        failed=1
    fi
}

checkpoint=$(mktemp -d)/random-model # built by the first training step, reused by the second
trap 'rm -rf "$(dirname "$checkpoint")"' EXIT

for part in "${parts[@]}"; do
    log="$OUT/$part.log"
    versions "$log"
    case "$part" in
        encode)
            step "$limit_encode" "$log" "$PYTHON" benchmarks/encode.py "${model[@]}" "${plain[@]}" \
                --out "$OUT/encode.json"
            step "$limit_stops" "$log" "$PYTHON" benchmarks/encode.py "${model[@]}" "${stops[@]}" \
                --out "$OUT/continuous_batching.json"
            ;;
        latency)
            step "$limit_latency" "$log" "$PYTHON" benchmarks/latency.py "${model[@]}" "${latency[@]}" \
                --out "$OUT/latency.json"
            ;;
        train)
            train=("${model[@]}" --checkpoint "$checkpoint")
            step "$limit_sft" "$log" "$PYTHON" benchmarks/train_step.py --stage sft "${train[@]}" "${sft[@]}" \
                --out "$OUT/train_sft.json"
            step "$limit_rl" "$log" "$PYTHON" benchmarks/train_step.py --stage rl "${train[@]}" "${rl[@]}" \
                --out "$OUT/train_rl.json"
            ;;
    esac
done
exit "$failed"
