"""The inference engine: both UME-R1 embeddings from one call, disc from the prefill and gen
from a decode that stops per row; plus the teacher-forced forward training reads.

Why a decode loop of our own instead of `generate(output_hidden_states=True)`:
- `generate` materialises the hidden states of every layer at every step; we keep only the last
  layer's state at the single step whose input is `<gen_emb>`.
- rows stop as soon as they have consumed `<gen_emb>` (it is followed only by `<|im_end|>`),
  and finished rows are dropped from the KV cache or, with more prompts waiting, replaced by them
  (continuous batching), so a long generation does not hold the whole batch hostage;
- the disc embedding comes from the same prefill that starts generation.

Extraction rules (UME-R1 §1): disc = last-layer state AT the last `<disc_emb>` of the prompt;
gen = last-layer state of the step whose input is the last `<gen_emb>` generated. A row that ends
without one (`<|im_end|>` or the token cap) takes the state of its last generated step, the one
that produced its final token, as the authors' evaluation reads `generate`'s last hidden state.
Both are L2-normalised float32.

Inference stops a row once it has consumed `<gen_emb>` (only `<|im_end|>` follows). RL rollouts
(`Sampling.stop_at_gen_emb=False`) run on to the first `<|im_end|>` as the authors' rollouts do,
so that token is part of the completion the policy and KL terms score.

Modules, in the order a call meets them:
- `tokens`: the token ids the engine acts on;
- `prefill`: the prompt's forward pass, RoPE positions, reading disc (`disc_embeddings` for
  disc alone, cut right after `<disc_emb>`);
- `kv_cache`: a cache that grows in place instead of re-allocating every step;
- `sampling`: greedy, or sampled with temperature / top-k / top-p and banned tokens; and
  `forced_stops`, which imposes per-input stop lengths on a model that has none (tests, benchmarks);
- `state`: the one `DecodeState` the loops carry, how a prefill starts it, how a step's result
  updates it, and how the rows of later prompts join it;
- `refill`: continuous batching, waiting prompts joining the running batch as rows finish;
- `lean_step`: one eager decode step calling the weights directly (~12 kernels per layer);
- `graph_step`: the same step over fixed shapes, captured as a CUDA graph;
- `decode`: `generate_embeddings`, the eager and the fixed-shape loops, and their tunables
  (`DECODE_RESERVE`, `CHECK_EVERY`, `COMPACT_DEAD_FRACTION`: set them on `model.engine.decode`);
- `teacher_forcing`: prompt + completion in one forward, the reference the loop must match;
- `completion`: reading the generated text (reasoning, summary, format).
"""

from model.engine.completion import ParsedCompletion, format_ok, parse_completion, strip_trailers
from model.engine.decode import BatchEmbeddings, WaitTurn, generate_embeddings, use_cuda_graphs
from model.engine.prefill import (
    Batch,
    disc_embeddings,
    last_token_positions,
    normalise,
    rope_positions,
    run_prefill,
    truncate_after,
)
from model.engine.refill import PromptSource
from model.engine.sampling import Decoding, Sampling, TokenOverride, forced_stops, pick_next_tokens
from model.engine.state import StepCallback
from model.engine.teacher_forcing import append_completions, gen_positions, teacher_forced_gen_embeddings
from model.engine.tokens import TokenIds

__all__ = [
    "Batch",
    "BatchEmbeddings",
    "Decoding",
    "ParsedCompletion",
    "PromptSource",
    "Sampling",
    "StepCallback",
    "TokenIds",
    "TokenOverride",
    "WaitTurn",
    "append_completions",
    "disc_embeddings",
    "forced_stops",
    "format_ok",
    "gen_positions",
    "generate_embeddings",
    "last_token_positions",
    "normalise",
    "parse_completion",
    "pick_next_tokens",
    "rope_positions",
    "run_prefill",
    "strip_trailers",
    "teacher_forced_gen_embeddings",
    "truncate_after",
    "use_cuda_graphs",
]
