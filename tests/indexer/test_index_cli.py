"""`ume index` and `ume status` as a user runs them: output, exit status, crashes, sharding."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.cli import main
from indexer.catalog.open import open_store
from indexer.catalog.store import Match, Point
from indexer.sharding import shard_of
from indexer.writer import KILL_AFTER_ENV
from tests.conftest import REPO
from tests.indexer.test_indexer import BROKEN, GOOD_FILES, ITEMS, KINDS, PDF, VIDEO, make_library, write_image

SUMMARY_KEYS = ("indexed", "unchanged", "reused", "removed", "failed", "points")


def index_args(root: Path, model: Path, *location: str) -> list[str]:
    return [
        "index", str(root), *location, "--model", str(model), "--mode", "both",
        "--max-new-tokens", "4", "--segment-seconds", "1.5", "--pdf-dpi", "40",
        "--batch-size", "2", "--no-progress",
    ]  # fmt: skip


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def expected_segments(root: Path) -> Counter[str]:
    """How many item points each good file of the library makes."""
    counts = Counter({str(root / PDF): 3, str(root / VIDEO): 2})
    counts.update(str(f) for f in root.rglob("*") if f.parent.name != "broken" and _is_image(f))
    return counts


def _is_image(path: Path) -> bool:
    return path.suffix in {".jpg", ".png", ".webp", ".gif", ".bmp", ".tiff"} and not any(
        part.startswith((".", "@")) or part == "System Volume Information" for part in path.parts
    )


def stored_segments(data_dir: Path | None = None, qdrant_url: str | None = None) -> Counter[str]:
    with open_store(data_dir, qdrant_url) as store:
        points = store.scroll("media", Match(fields={"record": "item"}))
        return Counter(payload["path"] for _, payload, _ in points)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tiny model on one thread, here and in the processes these tests start: its batches
    are too small to gain from more, and a busy machine makes a team of threads wait."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "library")


def test_json_summary_status_and_exit_codes(library, tiny_model_dir, tmp_path, capsys) -> None:
    data = ["--data-dir", str(tmp_path / "index")]
    code, summary = run_json(capsys, index_args(library, tiny_model_dir, *data))
    assert code == 1  # some files failed
    assert all(isinstance(summary[key], int) for key in SUMMARY_KEYS)
    assert (summary["indexed"], summary["failed"], summary["points"]) == (GOOD_FILES, 5, ITEMS)
    assert {f["path"] for f in summary["failures"]} == {str(library / name) for name in BROKEN}
    assert set(summary["seconds"]) >= {"scan", "decode", "encode", "store"}

    assert main(["status", *data, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["kinds"] == KINDS and status["points"] == ITEMS
    assert status["info"]["model_id"] == str(tiny_model_dir.resolve())
    reasons = {Path(f["path"]).name: f["reason"] for f in status["failures"]}
    assert "password" in reasons["encrypted.pdf"] and "empty" in reasons["zero.png"]

    shutil.rmtree(library / "broken")
    code, summary = run_json(capsys, index_args(library, tiny_model_dir, *data))
    assert code == 0
    assert (summary["unchanged"], summary["removed"], summary["failed"]) == (GOOD_FILES, 5, 0)
    assert main(["status", *data]) == 0
    assert "0 files failed" in capsys.readouterr().out


def test_a_collection_refuses_another_model(library, tiny_model_dir, tmp_path, capsys) -> None:
    data = ["--data-dir", str(tmp_path / "index")]
    assert main([*index_args(library, tiny_model_dir, *data)]) == 1
    capsys.readouterr()
    other = tmp_path / "other-model"
    assert main(["build-tiny-model", str(other), "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(index_args(library, other, *data)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "was built with model" in error and "--reembed" in error


def test_one_engine_at_a_time(library, tiny_model_dir, tmp_path, capsys) -> None:
    both = ["--data-dir", str(tmp_path / "index"), "--qdrant-url", f"local:{tmp_path / 'q'}"]
    assert main(index_args(library, tiny_model_dir, *both)) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["edge", "qdrant"])
def test_killed_run_resumes_with_every_item_once(engine, library, tiny_model_dir, tmp_path, request) -> None:
    """On the embedded engine, and on a real Qdrant server when UME_TEST_QDRANT_URL names one."""
    if engine == "qdrant":
        where = {"qdrant_url": request.getfixturevalue("qdrant_url")}
        args = index_args(library, tiny_model_dir, "--qdrant-url", where["qdrant_url"])
    else:
        where = {"data_dir": tmp_path / "index"}
        args = index_args(library, tiny_model_dir, "--data-dir", str(where["data_dir"]))
    # Killed right after the second write of item points, before the records marking them done.
    env = os.environ | {KILL_AFTER_ENV: "2"}
    killed = subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=REPO, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    with open_store(**where) as store:
        pending = store.count("media", Match(fields={"record": "file", "status": "pending"}))
        assert pending > 0 and store.count("media", Match(fields={"record": "item"})) > 0

    assert main(args) == 1  # resumes; the broken files fail again
    assert stored_segments(**where) == expected_segments(library)
    with open_store(**where) as store:
        assert store.count("media", Match(fields={"record": "file", "status": "pending"})) == 0
        assert store.count("media", Match(fields={"record": "file"})) == GOOD_FILES + len(BROKEN)


def library_both_workers_share(tmp_path: Path) -> Path:
    """A library where each of 2 workers owns some files. Ownership hashes the whole path, which
    holds pytest's numbered temporary folder, so some runs would give one worker every file:
    another folder name is tried until both have some."""
    for attempt in range(64):
        library = make_library(tmp_path / f"library-{attempt}", broken=False)
        owners = Counter(shard_of(path, 2) for path in expected_segments(library))
        if owners[0] and owners[1]:
            return library
        shutil.rmtree(library)
    raise AssertionError("no folder name split the library between two workers")


def test_two_worker_processes_share_one_server_collection(tiny_model_dir, tmp_path, capfd) -> None:
    library = library_both_workers_share(tmp_path)
    server = ["--qdrant-url", f"local:{tmp_path / 'qdrant'}"]
    args = [*index_args(library, tiny_model_dir, *server), "--workers", "2", "--json"]
    assert main(args) == 0
    summary = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert (summary["indexed"], summary["points"], summary["failed"]) == (GOOD_FILES, ITEMS, 0)
    assert stored_segments(qdrant_url=server[1]) == expected_segments(library)

    (library / PDF).unlink()  # rank 0 prunes it once both shards are done
    assert main(args) == 0
    summary = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert (summary["unchanged"], summary["removed"], summary["points"]) == (
        GOOD_FILES - 1,
        1,
        ITEMS - 3,
    )


def test_files_embedded_under_an_older_recipe_are_flagged_then_embedded_again(
    library, tiny_model_dir, tmp_path, capsys
) -> None:
    shutil.rmtree(library / "broken")
    data = ["--data-dir", str(tmp_path / "index")]
    assert main(index_args(library, tiny_model_dir, *data)) == 0
    capsys.readouterr()
    with open_store(tmp_path / "index") as store:  # what an index from before recipes holds
        records = store.scroll("media", Match(fields={"record": "file"}))
        store.upsert(
            "media",
            [Point(i, {k: v for k, v in p.items() if not k.startswith("recipe")}) for i, p, _ in records],
        )

    assert main(["status", *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] == GOOD_FILES
    assert main(["status", *data]) == 0
    assert f"{GOOD_FILES} files were embedded with an older recipe" in capsys.readouterr().out
    assert main(["search", "a photo", *data, "--model", str(tiny_model_dir), "--top-k", "2"]) == 0
    assert "ume: warning: " in capsys.readouterr().err

    code, summary = run_json(capsys, index_args(library, tiny_model_dir, *data))
    assert code == 0 and (summary["indexed"], summary["unchanged"]) == (GOOD_FILES, 0)
    assert main(["status", *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] == 0
    assert main(["search", "a photo", *data, "--model", str(tiny_model_dir), "--top-k", "2"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_more_folders_are_indexed_with_the_collections_own_model(
    library, tiny_model_dir, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("UME_MODEL", raising=False)  # a new collection would get UME-R1-2B
    data = ["--data-dir", str(tmp_path / "index")]
    main(index_args(library, tiny_model_dir, *data))
    capsys.readouterr()
    extra = tmp_path / "extra"
    write_image(extra / "new.jpg", seed=7)
    more = ["index", str(extra), *data, "--max-new-tokens", "4", "--no-progress"]  # no --model
    code, summary = run_json(capsys, more)
    assert (code, summary["indexed"], summary["points"]) == (0, 1, ITEMS + 1)
    assert main(["status", *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["model_id"] == str(tiny_model_dir.resolve())


def test_slow_steps_say_what_they_are_doing(library, tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    from indexer.catalog import tuning

    monkeypatch.setattr(tuning, "INDEXING_THRESHOLD_KB", 1)  # so that these few items get a graph
    shutil.rmtree(library / "broken")
    args = [
        a
        for a in index_args(library, tiny_model_dir, "--data-dir", str(tmp_path / "index"))
        if a != "--no-progress"
    ]
    assert main(args) == 0
    said = capsys.readouterr().err
    assert f"ume: loading model {tiny_model_dir.resolve()}" in said
    assert "ume: search graph: building" in said and "Ctrl-C skips it" in said
    (library / PDF).unlink()
    assert main(args) == 0
    said = capsys.readouterr().err
    assert "ume: removing 1 files no longer on disk" in said
    assert "loading model" not in said  # nothing new to embed: the model is never loaded


def test_a_collection_of_a_newer_schema_is_refused_then_rebuilt_with_reembed(
    library, tiny_model_dir, tmp_path, capsys
) -> None:
    shutil.rmtree(library / "broken")
    data = ["--data-dir", str(tmp_path / "index")]
    assert main(index_args(library, tiny_model_dir, *data)) == 0
    with open_store(tmp_path / "index") as store:
        info = store.collection_info("media")
        assert info is not None
        store.record_info("media", dataclasses.replace(info, schema_version=info.schema_version + 1))
    capsys.readouterr()
    assert main(index_args(library, tiny_model_dir, *data)) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "newer than this ume understands" in error and "--reembed" in error
    code, summary = run_json(capsys, [*index_args(library, tiny_model_dir, *data), "--reembed"])
    assert (code, summary["indexed"], summary["points"]) == (0, GOOD_FILES, ITEMS)
    assert main(["status", *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["schema_version"] == info.schema_version


def test_quantize_switches_a_collection_without_embedding_again(
    library, tiny_model_dir, tmp_path, capsys
) -> None:
    shutil.rmtree(library / "broken")
    data = ["--data-dir", str(tmp_path / "index")]
    assert main(index_args(library, tiny_model_dir, *data)) == 0
    capsys.readouterr()
    code, summary = run_json(capsys, [*index_args(library, tiny_model_dir, *data), "--quantize", "int8"])
    assert (code, summary["embedded"], summary["points"]) == (0, 0, ITEMS)
    assert summary["graph"] in ("exact", "ready")  # the run waited for the rebuild
    assert main(["status", *data, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["info"]["quantization"], status["points"]) == ("int8", ITEMS)
    assert status["graph"].startswith("search graph: ")
    assert main(["status", *data]) == 0
    assert "vectors: int8 in memory, originals on disk" in capsys.readouterr().out
    assert stored_segments(tmp_path / "index") == expected_segments(library)


def test_a_run_past_the_size_a_server_serves_better_says_so_with_the_command(
    library, tiny_model_dir, tmp_path, capsys, monkeypatch
) -> None:
    from indexer.catalog import tuning

    data = ["--data-dir", str(tmp_path / "index")]
    monkeypatch.setattr(tuning, "SERVER_ABOVE_ITEMS", ITEMS + 1)
    main(index_args(library, tiny_model_dir, *data))
    assert "Qdrant server serves better" not in capsys.readouterr().out
    monkeypatch.setattr(tuning, "SERVER_ABOVE_ITEMS", ITEMS - 1)
    main(index_args(library, tiny_model_dir, *data))
    lines = [line for line in capsys.readouterr().out.splitlines() if "Qdrant server serves better" in line]
    assert len(lines) == 1
    assert f"holds {ITEMS:,} items" in lines[0] and "docker compose up -d qdrant" in lines[0]
    assert "--qdrant-url http://localhost:6333" in lines[0]
