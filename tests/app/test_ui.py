"""The search UI's endpoints through gradio_client, its file serving, and `ume serve`/`ume demo`.

The UI runs in-process on a copy of the tiny-model fixture index; every public endpoint is called
the way an API user would call it, and the file route is probed the way an attacker would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app.cli import UserError
from app.cli.serve_cmd import indexing_policy, open_context, parse_auth
from app.context import TEST_MODEL_NOTICE, AppContext, IndexingPolicy, make_context
from app.files import FileAccessError, ServedFiles
from app.hits import SearchHit
from app.search_request import SearchError, SearchRequest
from app.ui import display_media
from app.ui.index_tab import IndexHandlers
from app.ui.page import build_ui, launch
from app.ui.page_load import deep_link
from app.ui.search_tab import SearchHandlers
from indexer.catalog import schema
from indexer.catalog.open import open_store
from indexer.catalog.store import Match, Point
from model.encoder import Encoder
from model.world import REFERENCE_MODEL
from model.world.gallery import plan_gallery, read_example_queries, write_gallery
from tests.app.fixture_index import (
    COLLECTION,
    MAX_NEW_TOKENS,
    FixtureIndex,
    fill_store,
    load_encoder,
    reasoning_for,
    shared_index,
)

CAT = "photos/tabby_cat_closeup.jpg"
EXAMPLE_PDF = "documents/cats_coffee_rockets_tomatoes.pdf"  # four pages
CAPTION = re.compile(r"^-?\d\.\d{3} · (image|video|document)( · .+)?$")


@dataclass
class RunningUI:
    ctx: AppContext
    url: str
    client: Client
    root: Path
    encoder: Encoder


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def ui(index: FixtureIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUI]:
    """The UI on its own copy of the fixture index (the Index tab test adds to it)."""
    data_dir = tmp_path_factory.mktemp("ui") / "data"
    shutil.copytree(index.data_dir, data_dir)
    encoder = load_encoder(index.model_dir)
    with open_store(data_dir=data_dir) as store:
        ctx = make_context(
            store,
            COLLECTION,
            encoder,
            max_new_tokens=MAX_NEW_TOKENS,
            test_model=True,
            index_settings={"data_dir": data_dir, "max_new_tokens": MAX_NEW_TOKENS},
        )
        demo = build_ui(ctx)
        launch(demo, ctx, prevent_thread_lock=True, quiet=True)
        url = demo.local_url
        assert url is not None
        try:
            yield RunningUI(ctx, url, Client(url, verbose=False), index.root, encoder)
        finally:
            demo.close()


def search_json(ui: RunningUI, text: str = "", image: str | None = None, **filters: object) -> dict:
    arguments = {"mode": "fast", "kind": "all", "folder": "", "top_k": 5} | filters
    raw = ui.client.predict(text, image, None, *arguments.values(), api_name="/search")
    return json.loads(raw)


def test_fast_search_endpoint_gives_tiles_with_score_and_kind(ui: RunningUI) -> None:
    gallery, status = ui.client.predict("a cat", None, None, "all", "", 6, api_name="/search_fast")
    assert len(gallery) == 6
    assert all(CAPTION.match(tile["caption"]) for tile in gallery), gallery
    assert all(Path(tile["image"]).is_file() for tile in gallery)
    assert "6 results · fast mode" in status


def test_reasoning_search_streams_before_the_results_arrive(ui: RunningUI) -> None:
    job = ui.client.submit(
        "a rocket", None, None, "reasoning", "image", "", 3, 20, api_name="/search_reasoning"
    )
    reasoning, gallery, status = job.result(timeout=60)
    updates = job.outputs()
    assert len(updates) >= 2 and updates[0][1] == []  # first the waiting text, no tiles yet
    assert "reasoning about your query" in updates[0][2]
    assert reasoning == "(the model wrote no reasoning)"  # the random model writes blank lines
    assert len(gallery) == 3 and all("image" in tile["caption"] for tile in gallery)
    assert "3 results · reasoning mode" in status


def test_query_reasoning_reaches_the_page_while_it_is_generated(
    ui: RunningUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that writes "<think>a red bike</think>" in pieces: each piece shows up in turn."""
    tokenizer = ui.encoder.processor.tokenizer
    original = ui.encoder.encode_query

    def writing(items, target_kind="image", on_tokens=None, **kwargs):
        ids: list[int] = []
        for piece in ("<think>", "a red", " bike", "</think>"):
            ids += tokenizer(piece, add_special_tokens=False)["input_ids"]
            on_tokens(0, list(ids))
            time.sleep(0.25)
        return original(items, target_kind=target_kind, **kwargs)

    monkeypatch.setattr(ui.encoder, "encode_query", writing)
    job = ui.client.submit("a bike", None, None, "reasoning", "all", "", 2, 20, api_name="/search_reasoning")
    job.result(timeout=60)
    shown = [update[0] for update in job.outputs()]
    assert shown.index("<think>a red") < shown.index("<think>a red bike</think>")


def test_search_api_returns_the_cli_json(ui: RunningUI) -> None:
    cat = ui.root / CAT
    result = search_json(ui, image=handle_file(str(cat)), top_k=3)
    assert result["mode"] == "fast"
    first = result["hits"][0]
    assert set(first) == {"path", "kind", "page", "start", "end", "score", "summary", "reasoning"} | {
        "taken",
        "taken_source",
    }
    assert first["path"] == str(cat) and first["reasoning"] == reasoning_for(cat)
    assert first["score"] == pytest.approx(1.0, abs=1e-3)


def test_search_api_runs_every_mode_with_filters(ui: RunningUI) -> None:
    for mode in ("reasoning", "rerank"):
        result = search_json(ui, "pages about tomatoes", mode=mode, kind="document", top_k=2)
        assert [hit["kind"] for hit in result["hits"]] == ["document", "document"]
    photos = str(ui.root / "photos" / "café & friends")
    result = search_json(ui, "coffee", folder=photos, top_k=10)
    assert [Path(hit["path"]).name for hit in result["hits"]] == ["espresso_cup_on_saucer.jpg"]
    dated = search_json(ui, "a cat", top_k=10, after="2023-01-01", before="2024-06-01", sort="newest")
    assert [Path(hit["path"]).name for hit in dated["hits"]] == [
        "tabby_cat_closeup.jpg",
        "rocket_on_launch_pad_at_dusk.jpg",
    ]


def test_search_api_mistakes_come_back_as_one_line(ui: RunningUI) -> None:
    with pytest.raises(AppError, match="nothing to search for"):
        search_json(ui, "   ")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("name", "content", "field", "message"),
    [
        (
            "bomb.png",
            png_claiming(30_000, 30_000),
            "image",
            "the example image cannot be used: it is too large",
        ),
        ("noise.png", bytes(range(256)) * 8, "image", "the example image cannot be used: it is not an image"),
        ("notes.txt", b"just words", "image", "the example image cannot be used: it is not an image"),
        (
            "broken.mp4",
            b"\x00\x00\x00\x18ftypmp42" + bytes(2000),
            "video",
            "the example clip: not a readable video",
        ),
    ],
)
def test_bad_uploads_get_one_line_without_server_paths(
    ui: RunningUI,
    tmp_path: Path,
    name: str,
    content: bytes,
    field: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    upload = tmp_path / name
    upload.write_bytes(content)
    files = {"image": None, "video": None} | {field: handle_file(str(upload))}
    with pytest.raises(AppError) as error:
        ui.client.predict("", files["image"], files["video"], "fast", "all", "", 5, api_name="/search")
    shown = str(error.value)
    assert message in shown and "\n" not in shown.strip()
    assert "/" not in shown.split(message, 1)[1] and "gradio" not in shown.lower()  # no server path
    assert "Traceback" not in capfd.readouterr().err
    assert search_json(ui, "a cat")["hits"]  # the server keeps answering


def test_traces_endpoint_lists_items_with_their_reasoning_as_text(ui: RunningUI) -> None:
    table, status = ui.client.predict("all", "", "hubble", api_name="/browse_traces")
    rows = table["data"]
    assert len(rows) == 1 and rows[0][0] == "hubble_deep_field_galaxies.jpg"
    assert "<think>" in rows[0][4]
    assert "1 item" in status
    table, _ = ui.client.predict("video", "", "", api_name="/browse_traces")
    assert [row[2] for row in table["data"]] == ["0:00-0:04", "0:04-0:08", "0:08-0:12"]


def test_fast_search_is_not_held_up_by_a_running_generation(
    ui: RunningUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long generation holds the generation queue; fast searches still answer at once."""
    release = threading.Event()
    original = ui.encoder.encode_query

    def slow_generation(items, target_kind="image", **kwargs):
        if kwargs.get("mode") != "disc":
            release.wait(timeout=60)
        return original(items, target_kind=target_kind, **kwargs)

    monkeypatch.setattr(ui.encoder, "encode_query", slow_generation)
    running = ui.client.submit("a", None, None, "reasoning", "all", "", 2, 20, api_name="/search_reasoning")
    waiting = ui.client.submit("b", None, None, "reasoning", "all", "", 2, 20, api_name="/search_reasoning")
    try:
        time.sleep(0.5)
        started = time.monotonic()
        gallery, _ = ui.client.predict("a cat", None, None, "all", "", 3, api_name="/search_fast")
        assert len(gallery) == 3 and time.monotonic() - started < 10
        codes = sorted(job.status().code.value for job in (running, waiting))
        assert codes == ["IN_QUEUE", "ITERATING"]  # one generates, the other waits its turn
    finally:
        release.set()
    assert len(running.result(timeout=60)[1]) == 2 and len(waiting.result(timeout=60)[1]) == 2


def test_index_tab_indexes_a_folder_and_reports_failures(ui: RunningUI, tmp_path: Path) -> None:
    folder = tmp_path / "new photos"
    folder.mkdir()
    # New content: a copy of an indexed photo would be reused by fingerprint, not indexed.
    Image.new("RGB", (96, 64), (30, 160, 90)).save(folder / "another cat.jpg")
    (folder / "broken.jpg").write_bytes(b"not a picture at all")
    summary, failures = ui.client.predict(str(folder), "both", api_name="/index_folder")
    assert "1 indexed" in summary and "1 failed" in summary
    assert [Path(row[0]).name for row in failures["data"]] == ["broken.jpg"]
    found = search_json(ui, image=handle_file(str(folder / "another cat.jpg")), folder=str(folder))
    assert Path(found["hits"][0]["path"]).name == "another cat.jpg"
    assert fetch(ui, folder / "another cat.jpg").status_code == 200


def fetch(ui: RunningUI, path: str | Path, raw: str | None = None) -> httpx.Response:
    """GET a file through Gradio's file route, as the browser (or anyone) would."""
    target = raw if raw is not None else quote(str(path))
    return httpx.get(f"{ui.url.rstrip('/')}/gradio_api/file={target}", timeout=10)


def test_indexed_files_are_served(ui: RunningUI) -> None:
    cat = ui.root / CAT
    response = fetch(ui, cat)
    assert response.status_code == 200 and response.content == cat.read_bytes()
    assert fetch(ui, ui.root / "photos" / "café & friends" / "espresso_cup_on_saucer.jpg").status_code == 200


@pytest.fixture
def planted(ui: RunningUI, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Files an attacker would like to read: in the root but not indexed, and outside it."""
    root = ui.root
    outside = tmp_path / "outside.jpg"
    shutil.copy(root / CAT, outside)
    files = {
        "hidden": root / "photos" / ".secret.jpg",
        "notes": root / "notes.txt",
        "link": root / "photos" / "link.jpg",
        "sibling": Path(str(root) + "-evil") / "x.jpg",
        "outside": outside,
    }
    shutil.copy(root / CAT, files["hidden"])
    files["notes"].write_text("private")
    files["link"].symlink_to(outside)
    files["sibling"].parent.mkdir()
    shutil.copy(root / CAT, files["sibling"])
    yield files
    for name in ("hidden", "notes", "link"):
        files[name].unlink()
    shutil.rmtree(files["sibling"].parent)


def test_path_traversal_and_unindexed_files_are_refused(ui: RunningUI, planted: dict[str, Path]) -> None:
    root, outside = ui.root, planted["outside"]
    attempts = [
        fetch(ui, "/etc/passwd"),
        *(fetch(ui, path) for path in planted.values()),
        fetch(ui, "", raw=quote(str(root)) + "/photos/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        fetch(ui, "", raw=quote(str(root)) + "/%2E%2E/" + quote(str(outside.relative_to("/")))),
        fetch(ui, "", raw=quote(str(root / CAT)) + "%00.png"),
        fetch(ui, "", raw="photos/tabby_cat_closeup.jpg"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)


def test_served_files_refuse_every_path_outside_the_indexed_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    good = root / "a" / "good.jpg"
    good.write_bytes(b"x")
    (root / "a" / "other.jpg").write_bytes(b"x")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    (root / "a" / "link.jpg").symlink_to(outside)
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "x.jpg").write_bytes(b"x")
    everything = ServedFiles([root], is_indexed=lambda path: True)  # only the path rules apply
    escapes = [root / "a" / "link.jpg", tmp_path / "root2" / "x.jpg", f"{root}/a/../a/good.jpg"]
    for escape in escapes:
        with pytest.raises(FileAccessError, match="refused"):
            everything.check(str(escape))
    files = ServedFiles([root], is_indexed=lambda path: path == str(good))
    assert files.check(good) == good.resolve()
    assert files.url(good).startswith("gradio_api/file=") and "%20" not in files.url(good)
    refused = [
        "",
        "relative/good.jpg",
        f"{root}/a/../a/good.jpg",
        str(root / "a" / "other.jpg"),
        str(root / "a"),
        str(root / "missing.jpg"),
        f"{good}\x00",
        str(tmp_path / "root2"),
    ]
    for path in refused:
        with pytest.raises(FileAccessError, match="refused"):
            files.check(path)


def test_concurrent_searches_render_pdf_pages_as_a_lone_render_does(examples_dir: Path) -> None:
    """Eight searches at once show PDF hits: gallery tiles and detail-pane pages, all rendered by
    pdfium, which is not thread-safe (unlocked, this crashes the process). Every picture must
    come back with the pixels of a render made alone, and no search may fail."""
    files = ServedFiles([examples_dir], is_indexed=lambda path: True)
    handlers = SearchHandlers(AppContext(COLLECTION, None, files))
    path = str(examples_dir / EXAMPLE_PDF)
    hits = [
        asdict(SearchHit(f"p{page}", path, "document", page, None, None, None, None, None, 0.5))
        for page in range(1, 5)
    ]

    def shown(hit: dict) -> tuple[bytes, bytes]:
        """(detail-pane page, gallery tile) pixels of one hit."""
        detail = handlers.detail(hit)
        assert detail.image["visible"] and not detail.video["visible"], detail.video
        return detail.image["value"].tobytes(), display_media.tile(SearchHit(**hit), files).tobytes()

    display_media._cached_tile.cache_clear()
    alone = [shown(hit) for hit in hits]
    assert len(set(alone)) == len(hits)  # four different pages, so a mix-up would show
    display_media._cached_tile.cache_clear()  # the threads render their tiles afresh, at once
    start = threading.Barrier(8)

    def search(worker: int) -> list[int]:
        start.wait(timeout=30)
        wrong = []
        for turn in range(6):
            page = (worker + turn) % len(hits)
            if shown(hits[page]) != alone[page]:
                wrong.append(page + 1)
        return wrong

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [job.result(timeout=120) for job in [pool.submit(search, w) for w in range(8)]]
    assert results == [[]] * 8  # .result() above re-raises anything a search raised


def test_a_root_indexed_later_is_served_after_allow_root(ui: RunningUI, tmp_path: Path) -> None:
    assert ui.ctx.blocks is not None
    ui.ctx.allow_root(tmp_path)
    assert str(tmp_path) in ui.ctx.blocks.allowed_paths and tmp_path in ui.ctx.files.roots


def test_folders_indexed_by_another_process_are_served_after_the_next_search(ui: RunningUI) -> None:
    ctx = AppContext(COLLECTION, ui.ctx.service, ServedFiles())  # knows no roots yet
    ctx.files = ServedFiles(is_indexed=ctx.is_indexed)
    SearchHandlers(ctx).fast("a cat", None, None, "all", "", 3)
    assert ui.root in ctx.files.roots


def test_auth_protects_the_page_and_the_api(index: FixtureIndex, ui: RunningUI) -> None:
    first = ui.ctx.blocks
    demo = build_ui(ui.ctx)
    launch(demo, ui.ctx, auth=("reader", "s3cret"), prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the client refuses to connect unauthenticated
            Client(demo.local_url, verbose=False)
        client = Client(demo.local_url, auth=("reader", "s3cret"), verbose=False)
        hits = json.loads(client.predict("cat", None, None, "fast", "all", "", 2, api_name="/search"))
        assert len(hits["hits"]) == 2
        assert httpx.get(f"{demo.local_url}gradio_api/file={ui.root / CAT}").status_code in (
            401,
            403,
        )
    finally:
        demo.close()
        ui.ctx.blocks = first


def test_parse_auth_and_the_environment_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_auth("ann:pa:ss") == ("ann", "pa:ss")
    assert parse_auth(None) is None
    for bad in ("nopassword", ":x", "x:"):
        with pytest.raises(UserError, match="USER:PASSWORD"):
            parse_auth(bad)


def test_unavailable_store_or_model_is_one_clear_line(tmp_path: Path) -> None:
    ctx = make_context(None, COLLECTION, None, ["the index cannot be opened (Qdrant is down)"])
    assert "the index cannot be opened (Qdrant is down)" in ctx.banner_html()
    _, _, status = SearchHandlers(ctx).fast("cat", None, None, "all", "", 5)
    assert "Qdrant is down" in status and "ume-error" in status
    with pytest.raises(gr.Error, match="Qdrant is down"):
        SearchHandlers(ctx).api("cat", None, None, "fast", "all", "", 5)


def test_serve_reports_a_locked_index_and_a_missing_model(index: FixtureIndex, tmp_path: Path) -> None:
    args = type("Args", (), {"data_dir": tmp_path / "busy", "qdrant_url": None, "collection": COLLECTION,
                             "model": None, "device": None})()  # fmt: skip
    with open_store(data_dir=tmp_path / "busy"):
        ctx = open_context(args)
    assert ctx.service is None and "in use by another ume process" in ctx.banner_html()
    args.data_dir, args.model = index.data_dir, str(tmp_path / "no-such-model")
    ctx = open_context(args)
    assert ctx.service is not None and ctx.service.encoder is None
    assert "searching and indexing are off: no model folder at" in ctx.banner_html()
    try:
        with pytest.raises(SearchError, match="no model is loaded"):
            ctx.service.search(SearchRequest(text="cat"))
    finally:
        ctx.service.store.close()


def test_test_model_banner_says_results_are_untrained(ui: RunningUI) -> None:
    assert TEST_MODEL_NOTICE in ui.ctx.banner_html() and "untrained" in TEST_MODEL_NOTICE


def test_deep_links_fill_the_controls_and_fall_back_safely() -> None:
    reasons = {"fast": None, "reasoning": None, "rerank": "no gen vectors"}
    link = {"q": "red bike", "mode": "reasoning", "kind": "video", "folder": "/p", "k": "7"}
    link |= {"after": "2024-06-01", "before": "2024-06-30", "sort": "newest"}
    dates = ["2024-06-01", "2024-06-30", "newest"]
    assert deep_link(link, reasons) == ["red bike", "reasoning", "video", "/p", 7, *dates]
    odd = {"mode": "rerank", "kind": "<script>", "k": "lots", "sort": "size"}
    assert deep_link(odd, reasons) == ["", "fast", "all", "", 10, "", "", "score"]
    assert deep_link({"k": "100000"}, reasons)[4] == 100


def test_indexing_from_the_browser_follows_the_serving_policy(ui: RunningUI, tmp_path: Path) -> None:
    assert indexing_policy("127.0.0.1", None).under is None
    remote = indexing_policy("0.0.0.0", None)
    assert remote.refusal and "--index-under" in remote.refusal
    handlers = IndexHandlers(ui.ctx)
    saved = ui.ctx.indexing
    try:
        ui.ctx.indexing = remote
        with pytest.raises(gr.Error, match="--index-under"):
            handlers.folder_to_index(str(tmp_path))
        ui.ctx.indexing = IndexingPolicy(under=[tmp_path / "allowed"])
        with pytest.raises(gr.Error, match="only folders under"):
            handlers.folder_to_index("/etc")
        (tmp_path / "allowed" / "x").mkdir(parents=True)
        assert (
            handlers.folder_to_index(str(tmp_path / "allowed" / "x" / ".." / "x"))
            == tmp_path / "allowed" / "x"
        )
        with pytest.raises(gr.Error, match="no such folder"):
            handlers.folder_to_index(str(tmp_path / "allowed" / "missing"))
    finally:
        ui.ctx.indexing = saved


def test_demo_falls_back_to_the_reference_model_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.demo_cmd import EXAMPLES, prepare_demo

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(EXAMPLES / CAT, media / "cat.jpg")
    ctx = prepare_demo("zhibinlan/UME-R1-2B", media=media, data_dir=tmp_path / "demo")
    try:
        said = [line for line in capsys.readouterr().err.splitlines() if "tiny reference model" in line]
        assert len(said) == 1 and "cannot load zhibinlan/UME-R1-2B" in said[0]
        assert ctx.test_model and TEST_MODEL_NOTICE in ctx.banner_html()
        assert ctx.service is not None and ctx.service.encoder is not None
        assert Path(ctx.service.encoder.model_id) == REFERENCE_MODEL
        assert ctx.service.available_modes() == {"fast": None, "reasoning": None, "rerank": None}
        assert [Path(h.path).name for h in ctx.service.search(SearchRequest(text="cat", top_k=5)).hits] == [
            "cat.jpg"
        ]
        assert ctx.files.roots == [Path(os.path.abspath(media))]
    finally:
        assert ctx.service is not None
        ctx.service.store.close()


def test_an_installed_copy_finds_the_reference_model_where_the_environment_says(tmp_path: Path) -> None:
    """The Docker image installs the package outside the repository and names the model's folder."""
    copy = tmp_path / "reference"
    shutil.copytree(REFERENCE_MODEL, copy)
    script = "from app.cli.demo_cmd import offline_encoder; print(offline_encoder(None, 'cpu').model_id)"
    env = os.environ | {"UME_REFERENCE_MODEL": str(copy)}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == copy
    assert "no reference model" not in done.stderr


def test_demo_without_a_gpu_runs_the_reference_model_on_its_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import demo_cmd

    small = plan_gallery(images=2, clips=1, documents=1, pages_per_document=2)
    monkeypatch.setattr(demo_cmd, "write_gallery", lambda folder: write_gallery(folder, small))
    monkeypatch.setattr(demo_cmd.torch.cuda, "is_available", lambda: False)
    ctx = demo_cmd.prepare_demo(data_dir=tmp_path / "demo")
    try:
        assert "no GPU, so using the tiny reference model" in capsys.readouterr().err
        assert ctx.test_model and ctx.service is not None and ctx.service.encoder is not None
        assert ctx.files.roots == [Path(os.path.abspath(tmp_path / "demo" / "world-gallery"))]
        assert len(ctx.service.browse()) == 6  # 2 images, 2 video segments, 2 PDF pages
        examples = read_example_queries(ctx.service.encoder.model_id)
        assert {kind for _, kind in examples} == {"image", "video", "document"}
        page = json.dumps(build_ui(ctx).get_config_file(), default=str)
        assert all(json.dumps(text) in page for text, _ in examples)  # clickable on the page
    finally:
        assert ctx.service is not None
        ctx.service.store.close()


def test_demo_gives_up_on_an_unreachable_hub_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline without HF_HUB_OFFLINE set, the demo must not sit through the hub's retries."""
    from app.cli import demo_cmd
    from model import hub

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *args, **kwargs: False)
    monkeypatch.setattr(hub, "cached", lambda name: False)  # as on a machine that never fetched it
    encoder, is_test_model = demo_cmd.load_demo_encoder("zhibinlan/UME-R1-2B", tmp_path, device="cpu")
    assert is_test_model and encoder.hidden_size == 128
    said = capsys.readouterr().err
    assert "cannot load zhibinlan/UME-R1-2B (the model zhibinlan/UME-R1-2B is not on this machine" in said


def test_banner_says_when_indexed_files_were_embedded_under_an_older_recipe(
    index: FixtureIndex, examples_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(examples_dir / CAT, root / "cat.jpg")
    with open_store(data_dir=tmp_path / "data") as store:
        fill_store(store, load_encoder(index.model_dir), root)
        ctx = make_context(store, COLLECTION, load_encoder(index.model_dir))
        assert "older recipe" not in ctx.banner_html()
        ((point_id, payload, _),) = store.scroll(COLLECTION, Match(fields={"record": "file"}))
        store.upsert(COLLECTION, [Point(point_id, payload | {"recipe_version": 1})])
        assert "1 indexed files were embedded with an older recipe" in ctx.banner_html()


def test_the_index_tab_lists_the_library_and_removes_a_folder_but_not_its_files(
    index: FixtureIndex, examples_dir: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(examples_dir / CAT, folder / "cat.jpg")
    shutil.copy(examples_dir / "documents/cats_coffee_rockets_tomatoes.pdf", second / "notes.pdf")
    with open_store(data_dir=tmp_path / "data") as store:
        encoder = load_encoder(index.model_dir)
        fill_store(store, encoder, first.resolve())
        fill_store(store, encoder, second.resolve())
        handlers = IndexHandlers(make_context(store, COLLECTION, encoder))
        rows = {row[0]: row[1:] for row in handlers.library_rows()}
        assert rows == {  # kinds, files, failed, with reasoning, pending, state
            str(first.resolve()): [1, 0, 0, 1, 0, 1, 0, "available"],
            str(second.resolve()): [1, 0, 4, 2, 0, 5, 0, "available"],
        }
        status, rows_after, _ = handlers.remove(str(second.resolve()))
        assert "2 files" in status and [row[0] for row in rows_after] == [str(first.resolve())]
        assert (second / "notes.pdf").is_file() and (second / "cat.jpg").is_file()  # files stay
        assert store.count(COLLECTION, schema.items()) == 1
        with pytest.raises(gr.Error, match="choose one of the indexed folders"):
            handlers.remove("/etc")
