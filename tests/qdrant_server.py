"""A real Qdrant server for the store tests, when one is given.

qdrant-client's local mode (what the "server" engine runs on here) ignores HNSW, quantization,
payload indexes, shards and replicas; a real server does not. With `UME_TEST_QDRANT_URL` set
(`docker compose up -d qdrant`, then `UME_TEST_QDRANT_URL=http://localhost:6333 make test`)
the store tests and the indexer's kill-and-resume test run against it too. Each such test
starts and ends with no ume collection on the server: point it at a server of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from indexer.catalog.open import open_store

QDRANT_URL_ENV = "UME_TEST_QDRANT_URL"
NOT_GIVEN = (
    f"no Qdrant server: set {QDRANT_URL_ENV} (e.g. http://localhost:6333 after `docker compose up -d qdrant`)"
)


def drop_every_collection(url: str) -> None:
    with open_store(qdrant_url=url) as store:
        for name in store.list_collections():
            store.drop_collection(name)


@pytest.fixture
def qdrant_url() -> Iterator[str]:
    """The server's URL, its ume collections dropped before and after the test; skips without one."""
    url = os.environ.get(QDRANT_URL_ENV)
    if not url:
        pytest.skip(NOT_GIVEN)
    drop_every_collection(url)
    yield url
    drop_every_collection(url)
