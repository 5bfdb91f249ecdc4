"""UME-R1 encoder: discriminative and generative embeddings, with the generated reasoning.

    encoder = Encoder.from_pretrained("zhibinlan/UME-R1-2B")
    queries = encoder.encode_query(["a cat on a sofa"], mode="disc")
    docs = encoder.encode_document([image_input("cat.jpg")], mode="both")
    scores = queries.disc @ docs.disc.T

`mode="disc"` is one forward pass cut at `<disc_emb>`; `mode="gen"`/`"both"` run one prefill
and a decode loop that stops at `<gen_emb>` (see `model.engine`). Inputs are grouped by
prompt length before batching, so padding is small and results do not depend on which other
items share a call. Given more inputs than `batch_size`, the decode batches continuously: waiting
inputs take the places of rows that have finished, so the batch stays full (`refill=False` runs
one batch after the other instead; greedy results are the same).

`max_new_tokens` defaults to 8192 like the authors' inference. Capping it (e.g. 512) bounds the
cost of a runaway generation; a row that hits the cap (or ends) without writing `<gen_emb>` gets
its gen embedding from its last generated step, as in the authors' evaluation; the model never
saw that in training, so gen quality for those rows drops. Typical generations are ~400 tokens.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Unpack

import torch
from PIL import Image

from model import prompts
from model.encoded import (
    DecodeRun,
    Encoded,
    EncodedArrays,
    Mode,
    TokenCallback,
    in_caller_numbers,
    row_callback,
)
from model.engine import (
    Decoding,
    Sampling,
    TokenIds,
    TokenOverride,
    WaitTurn,
    disc_embeddings,
    generate_embeddings,
)
from model.hub import DEFAULT_MODEL, fetch_refusal, on_this_machine, try_reference
from model.inputs import (
    INDEXING_BUDGET,
    EmbedInput,
    PreparedInput,
    VisionBudget,
    collate,
    prepare,
    text_input,
)

InputLike = EmbedInput | str | Image.Image


class ModelLoadError(Exception):
    """A checkpoint that cannot be loaded; the message is one line saying what to do."""


def _as_input(item: InputLike) -> EmbedInput:
    if isinstance(item, EmbedInput):
        return item
    if isinstance(item, Image.Image):
        return EmbedInput(image=item.convert("RGB"), kind="image")
    return text_input(item)


def document_task(item: EmbedInput) -> str:
    """Candidate-side task text for an input of this kind."""
    return prompts.DOCUMENT_TASKS[item.kind]


def query_task(item: EmbedInput, target_kind: str = "image") -> str:
    """Query-side task text: by what the query searches for, or by its own media."""
    if item.video_frames is not None:
        return prompts.QUERY_VIDEO_TASK
    if item.image is not None:
        return prompts.QUERY_IMAGE_WITH_TEXT_TASK if item.text else prompts.QUERY_IMAGE_TASK
    return prompts.QUERY_TASKS.get(target_kind, prompts.QUERY_TASKS["image"])


def task_text(item: EmbedInput, template: str) -> str:
    """The item's own task overrides the template; the item's words fill `{text}`."""
    template = item.task or template
    if "{text}" in template:
        return prompts.format_task(template, item.text)
    return f"{template}\n{item.text}" if item.text else template


class Encoder:
    """A loaded UME-R1 model with its processor; see the module docstring."""

    def __init__(self, model: Any, processor: Any, model_id: str, budget: VisionBudget | None = None):
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.budget = budget or INDEXING_BUDGET
        self.token_ids = lookup_token_ids(processor.tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str = "sdpa",
        budget: VisionBudget | None = None,
        local_files_only: bool = False,
    ) -> Encoder:
        """Load a UME-R1 checkpoint (hub name or local directory) with its processor.

        `local_files_only` never touches the network: a hub name must already be cached. A
        folder or a cached copy always loads without the network; a model that must be fetched
        is refused at once, in one line, when the hub cannot be reached (`model.hub`).
        """
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

        name = str(name_or_path)
        refusal = fetch_refusal(name, local_files_only)
        if refusal is not None:
            raise ModelLoadError(refusal)
        local_files_only = local_files_only or on_this_machine(name)  # no update checks offline
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        try:
            processor = AutoProcessor.from_pretrained(name, local_files_only=local_files_only)
            model = Qwen2VLForConditionalGeneration.from_pretrained(
                name, dtype=dtype, attn_implementation=attn_implementation, local_files_only=local_files_only
            )
        except (OSError, ValueError) as error:
            raise ModelLoadError(_load_hint(name, error)) from error
        model = model.to(device)  # type: ignore[arg-type]  # transformers' typing of .to is too narrow
        return cls(model, processor, model_id=name, budget=budget)

    def with_budget(self, budget: VisionBudget) -> Encoder:
        """The same loaded model and processor, preparing inputs under other pixel limits."""
        other = copy.copy(self)  # shallow: shares the weights, and any per-instance overrides
        other.budget = budget
        return other

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    def encode_query(
        self,
        inputs: Sequence[InputLike],
        target_kind: str = "image",
        *,
        mode: Mode = "both",
        batch_size: int = 16,
        on_tokens: TokenCallback | None = None,
        **decoding: Unpack[Decoding],
    ) -> Encoded:
        """Embed queries with the query-side task texts (by what they search for).

        `target_kind` ("image", "video", "document", ...) is what a text-only query searches for;
        a query with media takes its media's task text. The keyword parameters are those of
        `encode_prepared`.
        """
        items = [_as_input(i) for i in inputs]
        return self.encode_prepared(
            self._prepare_all(items, [task_text(i, query_task(i, target_kind)) for i in items]),
            mode=mode,
            batch_size=batch_size,
            on_tokens=on_tokens,
            **decoding,
        )

    def encode_document(
        self,
        inputs: Sequence[InputLike],
        *,
        mode: Mode = "both",
        batch_size: int = 16,
        on_tokens: TokenCallback | None = None,
        **decoding: Unpack[Decoding],
    ) -> Encoded:
        """Embed candidates (photos, video segments, pages, texts) with the document-side task texts.

        The keyword parameters are those of `encode_prepared`.
        """
        return self.encode(
            inputs,
            mode=mode,
            batch_size=batch_size,
            on_tokens=on_tokens,
            **decoding,
        )

    def encode(
        self,
        inputs: Sequence[InputLike],
        task: str | None = None,
        *,
        mode: Mode = "both",
        batch_size: int = 16,
        on_tokens: TokenCallback | None = None,
        **decoding: Unpack[Decoding],
    ) -> Encoded:
        """Embed inputs with an explicit task template (`{text}` = the input's words).

        Without `task`, each input's own `task` or the document-side default is used. The keyword
        parameters are those of `encode_prepared`.
        """
        items = [_as_input(i) for i in inputs]
        return self.encode_prepared(
            self._prepare_all(items, [task_text(i, task or document_task(i)) for i in items]),
            mode=mode,
            batch_size=batch_size,
            on_tokens=on_tokens,
            **decoding,
        )

    def prepare(self, item: EmbedInput, task: str) -> PreparedInput:
        """Processor tensors for one input (exposed so pipelines can prepare ahead of the model)."""
        return prepare(self.processor, item, task, self.budget)

    def _prepare_all(self, items: list[EmbedInput], tasks: list[str]) -> list[PreparedInput]:
        return [self.prepare(item, task) for item, task in zip(items, tasks, strict=True)]

    def encode_prepared(
        self,
        prepared: Sequence[PreparedInput],
        *,
        mode: Mode = "both",
        batch_size: int = 16,
        on_tokens: TokenCallback | None = None,
        wait_turn: WaitTurn | None = None,
        refill: bool = True,
        override: TokenOverride | None = None,
        stop_at_gen_emb: bool = True,
        **decoding: Unpack[Decoding],
    ) -> Encoded:
        """Embed prepared inputs, batching by prompt length; results come back in input order.

        mode: "disc" (one forward cut at `<disc_emb>`), "gen" (prefill, then decode until
            `<gen_emb>`) or "both" (disc and gen from the same prefill).
        batch_size: inputs per forward pass; in gen and both modes, the rows decoded at once.
        max_new_tokens: the cap on each generation; a row that reaches it without `<gen_emb>`
            takes gen from its last generated step.
        do_sample, temperature, top_p, top_k: sample instead of greedy decoding (`top_k` 0 and
            `top_p` 1 set no limit).
        seed: makes sampling repeatable; None draws from torch's global random source. One
            random source serves a whole batch, so sampled tokens depend on the batch.
        on_tokens: called with (input index, its generated tokens so far) after every token.
        wait_turn: called before every batch and every decode step, and may block there (the
            batch in flight is kept): background work passes `indexer.gate.Gate.wait_turn`.
        refill: continuous batching: with more inputs than `batch_size`, waiting inputs take the
            places of rows that finish, so the decode keeps a full batch (see
            `model.engine.refill`); False decodes one batch after the other, each to its end.
        override: rewrites each chosen token, given the input's index here (tests and benchmarks
            force stop lengths with `model.engine.forced_stops`).
        stop_at_gen_emb: stop a row once it has consumed `<gen_emb>` (the default, the cheapest);
            False decodes on as the authors' evaluation does, to `<|im_end|>` or `<|endoftext|>`
            (or the cap), and gen is read at the LAST `<gen_emb>` of the run.
        """
        if mode not in ("disc", "gen", "both"):
            raise ValueError(f"mode must be disc, gen or both, not {mode!r}")
        sampling = Sampling(
            **decoding,
            stop_at_gen_emb=stop_at_gen_emb,
            also_stop_at=() if stop_at_gen_emb else self._end_of_text(),
        )
        order = sorted(range(len(prepared)), key=lambda i: prepared[i].length, reverse=True)
        result = EncodedArrays(len(prepared), self.hidden_size, mode)
        size = max(batch_size, 1)
        groups = [order[start : start + size] for start in range(0, len(order), size)]
        if refill and mode != "disc" and len(order) > size:
            groups = [order]  # one decode: the inputs past the first batch join as rows finish
        for group in groups:
            if wait_turn is not None:
                wait_turn()
            if mode == "disc":
                batch = self._collated([prepared[i] for i in group])
                result.store_disc(group, disc_embeddings(self.model, batch, self.token_ids))
                continue
            run = DecodeRun(group, size, on_tokens, wait_turn, override)
            self._generate(prepared, run, sampling, result)
        return result.finish(self.processor.tokenizer)

    def _end_of_text(self) -> tuple[int, ...]:
        """`<|endoftext|>`, when the tokenizer has it, as a second end of generation."""
        tokenizer = self.processor.tokenizer
        token = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        return () if token is None or token == tokenizer.unk_token_id else (int(token),)

    def _collated(self, items: list[PreparedInput]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in collate(items, self.token_ids.pad).items()}

    def _generate(
        self, prepared: Sequence[PreparedInput], run: DecodeRun, sampling: Sampling, result: EncodedArrays
    ) -> None:
        """One decode over `run.order`: the first `run.width` inputs start, the others join as
        rows finish."""
        taken = min(run.width, len(run.order))

        def more(count: int) -> dict[str, torch.Tensor] | None:
            nonlocal taken
            chunk = run.order[taken : taken + count]
            taken += len(chunk)
            return self._collated([prepared[i] for i in chunk]) if chunk else None

        out = generate_embeddings(
            self.model,
            self._collated([prepared[i] for i in run.order[:taken]]),
            self.token_ids,
            replace(sampling, override=in_caller_numbers(run.override, run.order, self.device)),
            want_disc=result.mode == "both",
            on_step=row_callback(run.order, run.on_tokens) if run.on_tokens else None,
            wait_turn=run.wait_turn,
            refill=more if len(run.order) > taken else None,
        )
        assert out.gen is not None
        result.store_gen(run.order, out.gen, out.completions)
        if out.disc is not None:
            result.store_disc(run.order, out.disc)


def lookup_token_ids(tokenizer: Any) -> TokenIds:
    """Look the UME tokens up; a checkpoint without them is not a UME-R1 model."""
    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in (prompts.GEN_EMB_TOKEN, prompts.DISC_EMB_TOKEN, "<|im_end|>")
    }
    missing = [t for t, i in ids.items() if i is None or i == tokenizer.unk_token_id]
    if missing:
        raise ModelLoadError(
            f"the tokenizer has no {', '.join(missing)} token: this is not a UME-R1 checkpoint "
            "(use zhibinlan/UME-R1-2B or -7B, or `ume build-tiny-model DIR` for a test model)"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids["<|im_end|>"]
    return TokenIds(ids[prompts.GEN_EMB_TOKEN], ids[prompts.DISC_EMB_TOKEN], ids["<|im_end|>"], pad)


def _load_hint(name: str, error: BaseException) -> str:
    where = "local directory" if Path(name).exists() else "model name or directory"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"cannot load UME-R1 model from {where} '{name}' ({reason[:200]}). Check the path, or "
        f"fetch it with `ume download-model {name}`{try_reference()}"
    )
