"""The indexer end to end on a hostile fixture library, with the tiny model, on both engines.

The library holds every supported kind (a JPEG, PNG, WebP, GIF, BMP, TIFF, an mp4 of two
segments, a three-page PDF) under unicode and space-laden names in nested folders, next to the
clutter a real disk has (hidden files and folders, macOS forks, Thumbs.db, @eaDir, a symlink
loop) and one broken file of each kind.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from indexer.catalog.collection import CollectionMismatch, describe
from indexer.catalog.fingerprint import fingerprint
from indexer.catalog.open import open_store
from indexer.catalog.schema import item_id
from indexer.catalog.store import Match, StoredPoint
from indexer.config import IndexConfig
from indexer.run import index_folders
from indexer.scan import is_skipped, walk
from indexer.sharding import ShardSpec, shard_of
from indexer.summary import RunSummary
from tests.indexer.conftest import CountingEncoder, counting_encoder

GOOD_IMAGES = (
    "photos/beach day.jpg",
    "photos/été/café ☕.png",
    "photos/nested/deeper/leaf.webp",
    "photos/anim.gif",
    "photos/old scan.bmp",
    "photos/scan.tiff",
)
VIDEO = "videos/holiday clip.mp4"  # 3 s at 1.5 s per segment: two segments
PDF = "docs/report – 2024.pdf"  # three pages
BROKEN = {
    "broken/truncated.jpg": "truncated",
    "broken/zero.png": "empty",
    "broken/corrupt.mp4": "not a readable video",
    "broken/encrypted.pdf": "password",
    "broken/random.pdf": "not a readable PDF",
}
CLUTTER = (
    ".hidden.jpg",
    ".cache/thumb.jpg",
    "videos/._holiday clip.mp4",
    "Thumbs.db",
    "@eaDir/photo.jpg",
    "System Volume Information/x.jpg",
)
GOOD_FILES = len(GOOD_IMAGES) + 2
KINDS = {"image": len(GOOD_IMAGES), "video": 2, "document": 3}
ITEMS = sum(KINDS.values())
SEGMENT_SECONDS = 1.5


def noise(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def write_video(path: Path, seconds: float = 3.0, fps: int = 10, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.asarray(noise(seed + index, (64, 48))), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_pdf(path: Path, pages: int = 3, password: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = FPDF(format=(60, 40))
    document.set_font("helvetica", size=14)
    for number in range(1, pages + 1):
        document.add_page()
        document.cell(text=f"page {number}")
    if password:
        document.set_encryption(owner_password="owner", user_password=password)
    document.output(str(path))


def write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise(seed).save(path)


def write_broken(root: Path) -> None:
    (root / "broken").mkdir(parents=True)
    jpeg = io.BytesIO()
    noise(99, (64, 64)).save(jpeg, "JPEG", quality=95)
    (root / "broken/truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 6 // 10])
    (root / "broken/zero.png").touch()
    mp4 = (root / VIDEO).read_bytes()
    (root / "broken/corrupt.mp4").write_bytes(mp4[: len(mp4) // 2])
    write_pdf(root / "broken/encrypted.pdf", pages=1, password="secret")
    (root / "broken/random.pdf").write_bytes(np.random.default_rng(5).bytes(700))


def make_library(root: Path, broken: bool = True) -> Path:
    for seed, name in enumerate(GOOD_IMAGES):
        write_image(root / name, seed)
    write_video(root / VIDEO)
    write_pdf(root / PDF)
    for seed, name in enumerate(CLUTTER):
        if name.endswith(".jpg"):
            write_image(root / name, 50 + seed)
        elif name.endswith(".mp4"):
            shutil.copy(root / VIDEO, root / name)
        else:
            (root / name).touch()
    (root / "photos/loop").symlink_to(root, target_is_directory=True)
    if broken:
        write_broken(root)
    return root


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "library")


def config_for(root: Path, model: Path, location: dict[str, Any], **overrides: Any) -> IndexConfig:
    values: dict[str, Any] = {
        "roots": [root],
        "model": str(model),
        "mode": "both",
        "max_new_tokens": 4,
        "segment_seconds": SEGMENT_SECONDS,
        "pdf_dpi": 40,
        "batch_size": 4,
        "decode_workers": 2,
    }
    return IndexConfig(**(values | location | overrides))


def run_index(root: Path, encoder: CountingEncoder, location: dict[str, Any], **overrides: Any) -> RunSummary:
    encoder.encoded_items = 0
    config = config_for(root, Path(encoder.model_id), location, **overrides)
    return index_folders(config, encoder=encoder, progress=False)


def items(location: dict[str, Any], with_vectors: bool = False) -> list[StoredPoint]:
    with open_store(location.get("data_dir"), location.get("qdrant_url")) as store:
        return list(store.scroll("media", Match(fields={"record": "item"}), with_vectors=with_vectors))


def by_path(points: list[StoredPoint]) -> dict[str, list[StoredPoint]]:
    grouped: dict[str, list[StoredPoint]] = {}
    for point in sorted(points, key=lambda p: (p[1]["path"], p[1]["segment"])):
        grouped.setdefault(point[1]["path"], []).append(point)
    return grouped


@pytest.fixture(params=["edge", "server"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the index lives: the embedded engine, or the server engine via local mode."""
    if request.param == "edge":
        return {"data_dir": tmp_path / "index"}
    return {"qdrant_url": f"local:{tmp_path / 'qdrant'}"}


def test_index_counts_kinds_and_records_failures(library, encoder, location) -> None:
    summary = run_index(library, encoder, location)
    assert (summary.indexed, summary.failed, summary.points) == (GOOD_FILES, len(BROKEN), ITEMS)
    # Progressive: every item is embedded once for fast search, then once more with reasoning.
    assert summary.embedded == ITEMS == summary.filled["gen"] == summary.with_reasoning
    assert encoder.encoded_items == 2 * ITEMS and summary.pending == 0
    reasons = {Path(f.path).relative_to(library).as_posix(): f.reason for f in summary.failures}
    assert reasons.keys() == BROKEN.keys()
    for name, words in BROKEN.items():
        assert words in reasons[name], reasons[name]
    with open_store(location.get("data_dir"), location.get("qdrant_url")) as store:
        status = describe(store, "media")
    assert status.kinds == KINDS
    assert {f["path"] for f in status.failures} == {str(library / name) for name in BROKEN}


def test_an_open_store_and_a_progress_callback(library, encoder, tmp_path) -> None:
    """How an app that holds the store and shows its own progress bar runs the indexer."""
    calls: list[tuple[int, int | None]] = []
    config = config_for(library, Path(encoder.model_id), {"data_dir": tmp_path / "index"})
    with open_store(tmp_path / "index") as store:
        summary = index_folders(
            config, encoder, progress=False, store=store, on_progress=lambda *c: calls.append(c)
        )
        assert store.count("media", Match(fields={"record": "item"})) == summary.points == ITEMS
    files = GOOD_FILES + len(BROKEN)
    assert max(done for done, _ in calls) == files and (files, files) in calls


def test_item_payloads_say_where_each_item_is(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    grouped = by_path(items(location))
    assert set(grouped) == {str(library / name) for name in (*GOOD_IMAGES, VIDEO, PDF)}
    pages = [p[1]["page"] for p in grouped[str(library / PDF)]]
    spans = [(p[1]["start"], p[1]["end"]) for p in grouped[str(library / VIDEO)]]
    assert pages == [1, 2, 3]
    assert spans == [(0.0, 1.5), (1.5, 3.0)]
    photo = grouped[str(library / "photos/été/café ☕.png")][0][1]
    assert photo["kind"] == "image" and photo["extension"] == ".png" and photo["page"] is None
    assert str(library / "photos/été") in photo["folders"] and photo["root"] == str(library)


def test_second_run_embeds_nothing(library, encoder, location) -> None:
    run_index(library, encoder, location)
    again = run_index(library, encoder, location)
    assert encoder.encoded_items == 0 and again.embedded == 0
    assert (again.unchanged, again.indexed, again.points) == (GOOD_FILES, 0, ITEMS)
    assert again.failed == len(BROKEN)  # broken files are retried, and fail again


def test_moved_and_copied_files_reuse_vectors(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    before = by_path(items(location, with_vectors=True))
    moved = library / "moved/here/report.pdf"
    moved.parent.mkdir(parents=True)
    (library / PDF).rename(moved)
    shutil.copy2(library / VIDEO, library / "videos/copy.mp4")
    summary = run_index(library, encoder, location)
    assert encoder.encoded_items == 0
    assert (summary.reused, summary.removed, summary.points) == (2, 1, ITEMS + 2)
    after = by_path(items(location, with_vectors=True))
    assert str(library / PDF) not in after
    for old, new in ((library / PDF, moved), (library / VIDEO, library / "videos/copy.mp4")):
        assert [p[1]["segment"] for p in after[str(new)]] == [p[1]["segment"] for p in before[str(old)]]
        for (_, _, old_vectors), (_, _, new_vectors) in zip(before[str(old)], after[str(new)], strict=True):
            assert np.allclose(old_vectors["disc"], new_vectors["disc"])
            assert np.allclose(old_vectors["gen"], new_vectors["gen"])


def test_a_moved_file_whose_old_vectors_are_incomplete_is_embedded(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    with open_store(location["data_dir"]) as store:  # lose one segment of the video's vectors
        store.delete("media", [item_id(str(library / VIDEO), 1)])
    (library / VIDEO).rename(library / "videos/renamed.mp4")
    summary = run_index(library, encoder, location)
    assert (summary.reused, summary.indexed, summary.embedded) == (0, 1, 2)
    assert len(by_path(items(location))[str(library / "videos/renamed.mp4")]) == 2


def test_changed_file_is_reembedded_without_stale_segments(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    write_video(library / VIDEO, seconds=1.0, seed=7)  # one segment now, not two
    summary = run_index(library, encoder, location)
    assert (summary.indexed, summary.unchanged, summary.embedded) == (1, GOOD_FILES - 1, 1)
    assert len(by_path(items(location))[str(library / VIDEO)]) == 1
    assert summary.points == ITEMS - 1


def test_deleted_files_are_pruned_unless_asked_not_to(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    shutil.rmtree(library / "docs")
    (library / GOOD_IMAGES[0]).unlink()
    kept = run_index(library, encoder, location, prune=False)
    assert (kept.removed, kept.points) == (0, ITEMS)
    pruned = run_index(library, encoder, location)
    assert (pruned.removed, pruned.points) == (2, ITEMS - 4)
    with open_store(location["data_dir"]) as store:
        paths = {p[1]["path"] for p in store.scroll("media", Match(fields={"record": "file"}))}
    assert str(library / PDF) not in paths and str(library / GOOD_IMAGES[0]) not in paths


def test_both_engines_store_the_same_points(library, encoder, tmp_path) -> None:
    edge = {"data_dir": tmp_path / "edge"}
    server = {"qdrant_url": f"local:{tmp_path / 'server'}"}
    run_index(library, encoder, edge)
    run_index(library, encoder, server)
    edge_items, server_items = by_path(items(edge, True)), by_path(items(server, True))
    assert edge_items.keys() == server_items.keys()
    for path, points in edge_items.items():
        for (edge_id, edge_payload, edge_vectors), (
            server_id,
            server_payload,
            server_vectors,
        ) in zip(points, server_items[path], strict=True):
            assert edge_id == server_id
            ignored = {"indexed_at", "mtime"}  # written at different times; mtime: see below
            assert {k: v for k, v in edge_payload.items() if k not in ignored} == {
                k: v for k, v in server_payload.items() if k not in ignored
            }
            assert edge_payload["mtime"] == pytest.approx(server_payload["mtime"], abs=1e-5)
            assert np.allclose(edge_vectors["disc"], server_vectors["disc"], atol=1e-5)


def test_a_different_model_is_refused_unless_reembedding(library, encoder, tmp_path) -> None:
    from model.tiny import build_tiny_model

    location = {"data_dir": tmp_path / "index"}
    other_root = make_library(tmp_path / "other", broken=False)
    run_index(other_root, encoder, location)
    other_model = build_tiny_model(tmp_path / "other-model", seed=1)
    other_encoder = counting_encoder(other_model)
    with pytest.raises(CollectionMismatch, match="was built with model"):
        run_index(library, other_encoder, location)
    assert other_encoder.encoded_items == 0
    summary = run_index(library, other_encoder, location, reembed=True)
    assert summary.points == 2 * ITEMS  # the collection's old root was embedded again too
    assert {p[1]["model_id"] for p in items(location)} == {str(other_model.resolve())}
    again = run_index(library, other_encoder, location, reembed=True)  # already matches: kept
    assert (again.embedded, again.points) == (0, 2 * ITEMS)


def test_weights_changed_in_place_are_refused_unless_reembedding(library, tmp_path) -> None:
    """A checkpoint retrained where it lies keeps its path: its collection's vectors came from
    the old weights and must not be searched or extended with the new ones."""
    from model.tiny import build_tiny_model

    location = {"data_dir": tmp_path / "index"}
    model_dir = build_tiny_model(tmp_path / "model", seed=0)
    run_index(library, counting_encoder(model_dir), location)
    build_tiny_model(model_dir, seed=1)  # retrained in place
    retrained = counting_encoder(model_dir)
    with pytest.raises(CollectionMismatch, match="other weights"):
        run_index(library, retrained, location)
    assert retrained.encoded_items == 0
    summary = run_index(library, retrained, location, reembed=True)
    assert summary.points == ITEMS and retrained.encoded_items > 0
    again = run_index(library, retrained, location, reembed=True)  # the weights match now: kept
    assert (again.embedded, again.points) == (0, ITEMS)


def test_a_collection_older_than_weight_fingerprints_is_rebuilt_when_reembedding(library, tmp_path) -> None:
    """`ume demo` re-embeds its own index whenever the model changed; an index it made before
    weights were fingerprinted cannot say which weights filled it, so it is rebuilt once."""
    from model.tiny import build_tiny_model

    location = {"data_dir": tmp_path / "index"}
    encoder = counting_encoder(build_tiny_model(tmp_path / "model", seed=0))
    run_index(library, encoder, location)
    with open_store(data_dir=location["data_dir"]) as store:
        info = store.collection_info("media")
        assert info is not None and info.model_revision  # recorded for a local checkpoint
        store.record_info("media", dataclasses.replace(info, model_revision=""))
    assert run_index(library, encoder, location).embedded == 0  # without --reembed: kept
    rebuilt = run_index(library, encoder, location, reembed=True)
    assert rebuilt.embedded == rebuilt.points == ITEMS
    assert run_index(library, encoder, location, reembed=True).embedded == 0


def test_absurdly_large_files_fail_with_a_reason(library, encoder, tmp_path) -> None:
    summary = run_index(library, encoder, {"data_dir": tmp_path / "index"}, max_file_size="2KB")
    reasons = {Path(f.path).name: f.reason for f in summary.failures}
    assert "absurdly large" in reasons["holiday clip.mp4"]
    assert reasons["zero.png"] == "file is empty (0 bytes)"


def walked(root: Path) -> Iterator[str]:
    return (file.path.relative_to(root).as_posix() for file in walk([root]))


def test_scan_skips_clutter_and_survives_symlink_loops(library) -> None:
    found = list(walked(library))
    assert sorted(found) == sorted([*GOOD_IMAGES, VIDEO, PDF, *BROKEN])
    assert not any(is_skipped(part) for name in found for part in Path(name).parts)
    assert is_skipped("._IMG_0001.jpg") and is_skipped("Thumbs.db") and is_skipped("@eaDir")


def test_fingerprint_follows_content_not_name(library) -> None:
    image = library / GOOD_IMAGES[0]
    copy = library / "copy.jpg"
    shutil.copy(image, copy)
    assert fingerprint(image) == fingerprint(copy)
    write_image(copy, seed=123)
    assert fingerprint(image) != fingerprint(copy)
    big = library / "big.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    first = fingerprint(big)
    with open(big, "r+b") as handle:
        handle.seek(5 * 1024 * 1024 - 10)
        handle.write(b"0123456789")  # the last MiB is part of the hash
    assert fingerprint(big) != first


def test_sharding_splits_files_deterministically(library) -> None:
    paths = [file.path for file in walk([library])]
    owners = [{path for path in paths if ShardSpec(rank, 3).owns(path)} for rank in range(3)]
    assert sorted(set().union(*owners)) == sorted(paths)
    assert sum(len(owned) for owned in owners) == len(paths)  # each file has exactly one owner
    # The owner depends on the path alone, never on the run or the machine: pinned here.
    assert [shard_of(f"/photos/{i}.jpg", 2) for i in range(6)] == [0, 1, 0, 1, 1, 1]
    assert [shard_of(f"/photos/{i}.jpg", 3) for i in range(6)] == [0, 1, 0, 1, 2, 0]
