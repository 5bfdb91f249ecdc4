"""What one MMEB-V2 run is asked to do (`MmebConfig`) and what it found per dataset (`TaskResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from model.encoder import Mode
from model.eval.cache import MODES_OF, VectorMode

DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
DEFAULT_SHORTLIST = 50
DEFAULT_PUBLISHED_MODEL = "UME-R1-2B"
GenStop = Literal["end", "gen_emb"]
SampleSides = Literal["query", "candidate", "both"]


@dataclass(frozen=True)
class MmebConfig:
    """One evaluation run; `tasks` is a comma-separated list of dataset names, or "all".

    Catalogue datasets are read from the released layout when `media_root` is given, else from
    one folder per dataset under `data_root` (datasets of your own always come from there).
    """

    data_root: Path | None
    out_dir: Path
    tasks: str = "all"
    qry_mode: Mode = "both"
    tgt_mode: Mode = "both"
    batch_size: int = 8
    max_new_tokens: int = 8192  # the authors' inference setting; a lower cap changes gen scores
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    shortlist: int = DEFAULT_SHORTLIST
    published_model: str = DEFAULT_PUBLISHED_MODEL
    revision: str | None = None
    media_root: Path | None = None  # MMEB-V2 media as unpacked (image-tasks/, video-tasks/)
    annotations: Path | None = None  # local copies of the hub annotation datasets
    # "end": decode to <|im_end|>/<|endoftext|> and read the last <gen_emb> (the authors');
    # "gen_emb": stop at the first <gen_emb> (cheaper; what search does).
    gen_stop: GenStop = "end"
    samples: int = 0  # pass@k: sampled rollouts per input (0: no pass@k)
    temperature: float = 1.0  # pass@k sampling temperature; 0 is greedy
    sample_sides: SampleSides = "query"
    seed: int = 0


@dataclass
class TaskResult:
    """One dataset's outcome: its size, what was skipped, and a score per variant."""

    name: str
    modality: str
    meta_task: str
    metric: str
    scope: str
    queries: int
    candidates: int
    skipped: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # empty when nothing was scorable
    encoded: int = 0  # inputs embedded by this run (the rest came from the cache)
    reused: int = 0
    # The authors' graded NDCG@5 (their set() pairing) per variant, where it differs from ours.
    authors_scores: dict[str, float] = field(default_factory=dict)
    pass_at_k: dict[str, list[float]] = field(default_factory=dict)  # side -> [pass@1, …]
    source: str = ""  # where the records were read from
    error: str | None = None  # why the dataset could not be evaluated (the run went on)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def primary_variant(qry_mode: Mode, tgt_mode: Mode) -> str:
    """The variant compared with the published tables: gen wherever it was computed."""

    def headline(mode: Mode) -> VectorMode:
        return "gen" if "gen" in MODES_OF[mode] else "disc"

    return f"{headline(qry_mode)}-{headline(tgt_mode)}"
