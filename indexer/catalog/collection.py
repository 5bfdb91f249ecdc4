"""Collections remember the model that filled them; a different model is refused, not mixed.

Vectors from two models live in unrelated spaces, so an index searched or extended with another
model than the one that built it returns nonsense without any error. Every collection records
`CollectionInfo` (model id, embedding size, schema version, vector names, and a fingerprint of
a local checkpoint's weights) when created, and both indexing and searching check it first.
`--reembed` is the explicit way out: a collection built differently is emptied and everything
it held is embedded again with the new model (a matching collection is left as it is). A
collection of an older schema is upgraded in place when it is opened (`open_collection`,
`indexer.catalog.migrations`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from indexer.catalog import schema, tuning
from indexer.catalog.fingerprint import fingerprint
from indexer.catalog.migrations import SchemaMismatch, upgrade
from indexer.catalog.schema import FAILED, ITEM_KINDS, MODE_VECTORS, PENDING, SCHEMA_VERSION, FileRecord
from indexer.catalog.store import VECTOR_NAMES, CollectionInfo, Store, StoreError
from indexer.catalog.tuning import QUANTIZE_ABOVE_POINTS, quantized
from indexer.catalog.widening import resume_widening, widen
from model.encoder import Mode
from model.inputs import INDEXING_BUDGET, RECIPE_VERSION, VisionBudget, embedding_recipe

WEIGHT_FILES = ("*.safetensors", "*.bin")  # what a checkpoint's weights are saved as
REVISION_BYTES = 8


class CollectionMismatch(StoreError):
    """The collection was built differently from what this run would write or search."""


def resolved_model_id(name: str) -> str:
    """A local checkpoint is named by its absolute path, so `./m` and `/x/m` are one model."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def weights_revision(model_id: str) -> str:
    """A fingerprint of a local checkpoint's weight files ("" for a hub name or a folder
    without them). A checkpoint retrained or replaced in place keeps its path, and vectors of
    the old weights must not be searched with the new ones. Each file is fingerprinted as the
    indexer fingerprints media (its size and three MiB of it), so a 2B checkpoint costs
    milliseconds, not a read of every byte."""
    folder = Path(model_id)
    if not folder.is_dir():
        return ""
    files = sorted(file for pattern in WEIGHT_FILES for file in folder.glob(pattern))
    if not files:
        return ""
    digest = hashlib.blake2b(digest_size=REVISION_BYTES)
    for file in files:
        digest.update(f"{file.name}:{fingerprint(file)};".encode())
    return digest.hexdigest()


def weights_differ(recorded: str, current: str) -> bool:
    """Whether a collection's recorded weights fingerprint says other weights than `current`
    (an empty one on either side, a hub name or an older collection, says nothing)."""
    return bool(recorded and current) and recorded != current


def collection_info(model_id: str, dim: int, mode: Mode) -> CollectionInfo:
    """A new collection: room for every vector, whatever its mode, so a disc collection can
    gain gen vectors later in place (engines cannot add a vector slot to a collection)."""
    revision = weights_revision(model_id)
    return CollectionInfo(model_id, dim, SCHEMA_VERSION, VECTOR_NAMES, mode, model_revision=revision)


def open_collection(store: Store, collection: str) -> CollectionInfo | None:
    """The collection's info after upgrading it to this ume's schema; None when it does not exist."""
    resume_widening(store, collection)
    info = store.collection_info(collection)
    if info is None or info.schema_version == SCHEMA_VERSION:
        return info
    return upgrade(store, collection, info)


def check_model(store: Store, collection: str, model_id: str) -> CollectionInfo | None:
    """Refuse early (before loading a model) when the collection belongs to another model."""
    info = open_collection(store, collection)
    if info is None:
        return None
    if info.model_id != model_id:
        raise CollectionMismatch(
            f"collection {collection!r} was built with model {info.model_id}, not {model_id}: "
            f"pass --model {info.model_id}, choose another --collection, or add --reembed to "
            "embed its files again with the new model"
        )
    if weights_differ(info.model_revision, weights_revision(model_id)):
        raise CollectionMismatch(
            f"collection {collection!r} was built with other weights in {model_id} (its weight "
            "files changed since): add --reembed to embed its files again with these weights, "
            "or put the old weights back"
        )
    return info


def check_compatible(store: Store, collection: str, wanted: CollectionInfo) -> CollectionInfo:
    """The collection exists and matches `wanted` in model, size and schema, with room for the
    vectors of its mode (`fit_mode` makes that room)."""
    info = same_model_and_size(store, collection, wanted)
    needed = MODE_VECTORS[collection_mode(wanted)]
    if not set(needed) <= set(info.vectors):
        raise CollectionMismatch(
            f"collection {collection!r} has no room for {'+'.join(needed)} vectors: index it "
            f"with --mode {collection_mode(wanted)} to make room"
        )
    return info


def same_model_and_size(store: Store, collection: str, wanted: CollectionInfo) -> CollectionInfo:
    """The collection's info (upgraded to this schema), when it exists with `wanted`'s model and
    embedding size."""
    info = check_model(store, collection, wanted.model_id)
    if info is None:
        raise StoreError(f"no collection {collection!r}: index some folders into it first")
    if info.dim != wanted.dim:
        raise CollectionMismatch(
            f"collection {collection!r} holds {info.dim}-d vectors but {wanted.model_id} makes "
            f"{wanted.dim}-d ones: add --reembed to rebuild it"
        )
    return info


def make_ready(store: Store, collection: str, wanted: CollectionInfo) -> CollectionInfo:
    """An existing collection of `wanted`'s model and size, made ready for its mode."""
    info = same_model_and_size(store, collection, wanted)
    return fit_mode(store, collection, info, collection_mode(wanted))


def fit_mode(store: Store, collection: str, info: CollectionInfo, mode: Mode) -> CollectionInfo:
    """Make an existing collection ready for a run in `mode`, keeping every point it holds.

    A collection without a slot for the mode's vectors (one made in disc mode before slots were
    kept apart from modes) gets one (`widen`); a mode that fills vectors the collection's own
    mode does not becomes part of it, so later runs without --mode keep filling them.
    """
    needed, recorded = MODE_VECTORS[mode], collection_mode(info)
    if not set(needed) <= set(info.vectors):
        info = widen(store, collection, info, needed)
    wanted = mode_of((*MODE_VECTORS[recorded], *needed))
    if info.mode != wanted:
        info = replace(info, mode=wanted)
        store.record_info(collection, info)
    return info


def quantization_to_apply(info: CollectionInfo | None, asked: str | None) -> str | None:
    """The quantization a run asked for (`--quantize`) that the collection does not keep yet,
    or None. Unasked, the engine itself switches large collections to int8."""
    if info is None or asked is None or asked == info.quantization:
        return None
    return asked


def default_quantization() -> str:
    """How collections keep their vectors unless told, in words (for help texts)."""
    return f"int8 once a collection passes {QUANTIZE_ABOVE_POINTS:,} items"


def server_advice(items: int, embedded: bool) -> str | None:
    """One line for a run that left an embedded collection past the size where a Qdrant server
    serves better, with the commands; None below it, or on a server."""
    if not embedded or items <= tuning.SERVER_ABOVE_ITEMS:
        return None
    return (
        f"this collection holds {items:,} items: above {tuning.SERVER_ABOVE_ITEMS:,} a Qdrant server serves "
        "better (`docker compose up -d qdrant`, then add --qdrant-url http://localhost:6333)"
    )


def quantization_line(info: CollectionInfo) -> str:
    """How the collection keeps its vectors, in words."""
    if quantized(info.quantization):
        return "vectors: int8 in memory, originals on disk for rescoring"
    chosen = " (chosen)" if info.quantization == "none" else ""
    return f"vectors: full precision{chosen}, int8 above {QUANTIZE_ABOVE_POINTS:,} items"


def collection_mode(info: CollectionInfo) -> Mode:
    """What a run fills when told no --mode: the recorded mode, else (older collections) every
    vector the collection holds."""
    if info.mode in MODE_VECTORS:
        return info.mode  # type: ignore[return-value]
    return mode_of(info.vectors)


def mode_of(vectors: tuple[str, ...]) -> Mode:
    """The indexing mode that fills exactly these vectors."""
    return next(mode for mode, names in MODE_VECTORS.items() if set(names) == set(vectors))


def ensure_collection(store: Store, collection: str, info: CollectionInfo, reembed: bool) -> list[Path]:
    """Create the collection, or check it; with `reembed`, empty one built differently first.

    Returns the roots an emptied collection had held, so the caller can embed them again. With
    `reembed`, a collection of another model or size is rebuilt without upgrading it first, and
    so is one whose schema this ume cannot upgrade; one of another mode is only made ready for
    this one (`fit_mode`), keeping its points.
    """
    existing = store.collection_info(collection)
    if existing is None:
        store.create_collection(collection, info)
        return []
    if not (reembed and differently_built(existing, info)):
        try:
            make_ready(store, collection, info)
            return []
        except (CollectionMismatch, SchemaMismatch):
            if not reembed:
                raise
    roots = indexed_roots(store, collection)
    store.drop_collection(collection)
    store.create_collection(collection, info)
    return roots


def differently_built(existing: CollectionInfo, wanted: CollectionInfo) -> bool:
    """Another model, other weights or embedding size (the schema version and the mode aside:
    `fit_mode`). A local checkpoint's collection made before weights were fingerprinted counts
    as built differently: nothing says its vectors came from the weights there now."""
    other_weights = bool(wanted.model_revision) and existing.model_revision != wanted.model_revision
    return (existing.model_id, existing.dim) != (wanted.model_id, wanted.dim) or other_weights


def indexed_roots(store: Store, collection: str) -> list[Path]:
    """The distinct roots that files of a collection were indexed under."""
    roots = {schema.root_of(payload) for _, payload, _ in store.scroll(collection, schema.files())}
    return [Path(root) for root in sorted(root for root in roots if root)]


def stale_files(store: Store, collection: str, budget: VisionBudget = INDEXING_BUDGET) -> int:
    """Files whose vectors were made under another embedding recipe than this code's.

    Their vectors are not comparable with queries embedded now; the next `ume index` over their
    folders embeds them again (`indexer.state.made_with`).
    """
    recipes = {kind: embedding_recipe(kind, budget) for kind in ITEM_KINDS}
    return sum(store.count(collection, schema.files_not_made_with(k, r)) for k, r in recipes.items())


def outdated_files(store: Store, collection: str) -> int:
    """Files embedded under an older recipe version (prompt, extraction rules, query blank):
    their vectors do not compare exactly with queries embedded now."""
    return store.count(collection, schema.files_before_recipe(RECIPE_VERSION))


def stale_notice(count: int) -> str | None:
    """One line telling what to do about stale files, or None when there are none."""
    if not count:
        return None
    return (
        f"{count} files were embedded with an older recipe or other pixel limits than ume uses now: "
        "run `ume index` over their folders to embed them again"
    )


def outdated_notice(count: int) -> str | None:
    """One line for searches over files of an older recipe version, or None when there are none."""
    if not count:
        return None
    return (
        f"{count} indexed files were embedded with an older recipe and do not compare exactly with "
        "this query: run `ume index` over their folders to embed them again"
    )


@dataclass(frozen=True)
class StageCounts:
    """How far progressive indexing has got, in items (see `indexer.run`)."""

    searchable: int  # every item point: each holds a vector some search mode uses
    with_reasoning: int  # items with their gen vector, reasoning and summary
    pending: int  # items still lacking a vector the collection's mode fills


def stage_counts(store: Store, collection: str, root: str | None = None) -> StageCounts:
    """The collection's (or one indexed root's) items per indexing stage."""
    info = store.collection_info(collection)
    wanted = MODE_VECTORS[collection_mode(info)] if info is not None else ()
    pending = sum(store.count(collection, schema.items_lacking(vector, root=root)) for vector in wanted)
    return StageCounts(
        searchable=store.count(collection, schema.items(root=root)),
        with_reasoning=store.count(collection, schema.items(vector="gen", root=root)),
        pending=pending,
    )


@dataclass(frozen=True)
class FolderCounts:
    """What one indexed root holds: items per kind and per stage, and its files (failed apart)."""

    root: str
    kinds: dict[str, int]
    files: int
    failed: int
    stages: StageCounts


def folder_counts(store: Store, collection: str) -> list[FolderCounts]:
    """Every root the collection was indexed from, with its counts, in path order."""
    return [
        FolderCounts(
            root=str(root),
            kinds={
                kind: store.count(collection, schema.items(kind=kind, root=str(root))) for kind in ITEM_KINDS
            },
            files=store.count(collection, schema.files(root=str(root))),
            failed=store.count(collection, schema.files(FAILED, root=str(root))),
            stages=stage_counts(store, collection, str(root)),
        )
        for root in indexed_roots(store, collection)
    ]


@dataclass
class CollectionStatus:
    """What `ume status` shows: the model, item counts per kind, and files that failed."""

    collection: str
    info: CollectionInfo
    points: int  # item points
    files: int  # file records (indexed, failed or incomplete)
    kinds: dict[str, int]  # item points per kind
    incomplete: int  # files a killed run left half-written; the next run redoes them
    stale: int  # files embedded under an older recipe; the next run re-embeds them
    stages: StageCounts  # items searchable, with reasoning, and still waiting for a vector
    failures: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    graph: str = ""  # the search graph: `GraphStatus.describe()`

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["info"] = self.info.to_json()
        return data


def describe(store: Store, collection: str) -> CollectionStatus:
    info = open_collection(store, collection)
    if info is None:
        raise StoreError(
            f"no collection {collection!r}: index some folders first (ume index PATH "
            f"--collection {collection})"
        )
    failed = [FileRecord.from_payload(p) for _, p, _ in store.scroll(collection, schema.files(FAILED))]
    return CollectionStatus(
        collection=collection,
        info=info,
        points=store.count(collection, schema.items()),
        files=store.count(collection, schema.files()),
        kinds={kind: store.count(collection, schema.items(kind=kind)) for kind in ITEM_KINDS},
        incomplete=store.count(collection, schema.files(PENDING)),
        stale=stale_files(store, collection),
        stages=stage_counts(store, collection),
        failures=[{"path": record.path, "reason": record.reason or "unknown"} for record in failed],
        graph=store.graph_status(collection).describe(),
    )
