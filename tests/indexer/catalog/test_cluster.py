"""--shards and --replicas: from the command line into the request that creates a collection.

qdrant-client's local mode accepts a shard count and a replication factor and ignores them, so
it cannot show that they arrive. These tests put a small fake Qdrant server on loopback instead:
it answers the few REST calls that creating a collection makes and keeps every request body, so
the real qdrant-client sends the real request and the test reads what a server would have got.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.cli import UserError, build_parser, main
from app.cli.common import store_from_args
from indexer.catalog.open import open_store
from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.store import ClusterLayout, CollectionInfo, StoreError
from indexer.config import SHARDS_ENV, config_from_args
from indexer.sharding import open_store_waiting

INFO = CollectionInfo(model_id="tiny-ume", dim=8, schema_version=1, vectors=("disc", "gen"))
COLLECTION_PATH = re.compile(r"^/collections/([A-Za-z0-9_-]+)(/exists|/index)?$")


class FakeQdrant(BaseHTTPRequestHandler):
    """Just enough of Qdrant's REST API to create collections; `created` holds their bodies."""

    created: dict[str, dict[str, Any]]

    def do_GET(self) -> None:
        found = COLLECTION_PATH.match(self.path.split("?")[0])
        if self.path == "/":
            self.answer({"title": "qdrant - vector search engine", "version": "1.18.0"}, wrap=False)
        elif found and found.group(2) == "/exists":
            self.answer({"exists": found.group(1) in self.created})
        else:
            self.send_error(404)

    def do_PUT(self) -> None:
        found = COLLECTION_PATH.match(self.path.split("?")[0])
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if found and found.group(2) is None:
            self.created[found.group(1)] = body
            self.answer(True)
        elif found and found.group(2) == "/index":
            indexes = self.created.setdefault(f"{found.group(1)}/index", {})
            indexes[body["field_name"]] = body.get("field_schema")
            self.answer({"operation_id": 0, "status": "completed"})
        else:
            self.send_error(404)

    def answer(self, result: Any, wrap: bool = True) -> None:
        data = json.dumps({"result": result, "status": "ok", "time": 0.0} if wrap else result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def qdrant() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """The fake server's URL and the creation requests it has received, by collection."""
    created: dict[str, dict[str, Any]] = {}
    handler = type("Handler", (FakeQdrant,), {"created": created})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", created
    finally:
        server.shutdown()
        server.server_close()


def test_shards_and_replicas_reach_the_creation_request(qdrant) -> None:
    url, created = qdrant
    with open_store(qdrant_url=url, layout=ClusterLayout(shards=3, replicas=2)) as store:
        store.create_collection("media", INFO)
    body = created["media"]
    assert (body["shard_number"], body["replication_factor"]) == (3, 2)
    assert set(body["vectors"]) == {"disc", "gen"}  # the rest of the request is unchanged


def test_a_server_collection_keeps_its_payload_indexes_on_disk(qdrant) -> None:
    """Held in RAM, payload indexes took more memory per item than its int8 vectors
    (`benchmarks/item_memory.py`, measured on the embedded engine)."""
    url, created = qdrant
    with open_store(qdrant_url=url) as store:
        store.create_collection("media", INFO)
    indexes = created["media/index"]
    assert set(indexes) == set(PAYLOAD_INDEXES)
    assert all(schema["on_disk"] is True for schema in indexes.values())
    assert indexes["path"]["type"] == "keyword" and indexes["page"]["type"] == "integer"


def test_without_them_the_server_chooses(qdrant) -> None:
    url, created = qdrant
    with open_store(qdrant_url=url) as store:
        store.create_collection("media", INFO)
    assert "shard_number" not in created["media"]
    assert "replication_factor" not in created["media"]


def test_ume_index_flags_reach_the_server(qdrant, tmp_path) -> None:
    url, created = qdrant
    argv = ["index", "--qdrant-url", url, "--shards", "4", "--replicas", "2", str(tmp_path)]
    config = config_from_args(build_parser().parse_args(argv))
    with open_store_waiting(config, wait_s=0) as store:  # how an indexing run opens its store
        store.create_collection("media", INFO)
    assert (created["media"]["shard_number"], created["media"]["replication_factor"]) == (4, 2)


def test_ume_serve_takes_the_shard_count_from_the_environment(qdrant, monkeypatch) -> None:
    url, created = qdrant
    monkeypatch.setenv(SHARDS_ENV, "3")
    args = build_parser().parse_args(["serve", "--qdrant-url", url])
    with store_from_args(args) as store:
        store.create_collection("media", INFO)
    assert created["media"]["shard_number"] == 3
    assert "replication_factor" not in created["media"]


def test_the_embedded_index_refuses_them(tmp_path, capsys) -> None:
    status = main(["index", "--data-dir", str(tmp_path / "index"), "--shards", "2", str(tmp_path)])
    assert status == 2
    error = capsys.readouterr().err
    assert "--shards and --replicas apply to collections on a Qdrant server" in error
    serve_args = build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--replicas", "2"])
    with pytest.raises(UserError, match="apply to collections on a Qdrant server"):
        store_from_args(serve_args)
    with pytest.raises(StoreError, match="apply to collections on a Qdrant server"):
        open_store(data_dir=tmp_path / "index", layout=ClusterLayout(replicas=2))


def test_local_mode_accepts_and_ignores_them() -> None:
    with open_store(qdrant_url=":memory:", layout=ClusterLayout(shards=2, replicas=2)) as store:
        store.create_collection("media", INFO)
        assert store.collection_info("media") == INFO


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_count_below_one_is_a_usage_error(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["index", "--qdrant-url", ":memory:", "--shards", value, "x"])
    assert exited.value.code == 2
    assert "--shards" in capsys.readouterr().err


def test_the_layout_itself_refuses_a_count_below_one() -> None:
    with pytest.raises(StoreError, match="--replicas must be at least 1"):
        ClusterLayout(replicas=0)
