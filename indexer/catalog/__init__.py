"""The catalog: the one owner of a ume collection.

Everything that knows how a collection is stored lives here, and nothing else does:
- `store` — the narrow `Store` protocol and the types every engine speaks;
- `edge` / `server` — the two engines (embedded qdrant-edge; qdrant-client against a server);
- `edge_build` — the embedded engine's search graph, built on a copy in a child process and
  swapped in; `edge_convert` — its conversions to and from qdrant-edge's types;
- `tuning` — HNSW, segment and int8 settings for large collections, with their measurements;
- `open` — `open_store`, which picks one;
- `schema` — typed item and file records with their payload encoding, the kinds, the vector
  names per mode, the payload indexes, and the filters that select records;
- `migrations` — in-place upgrades of older collections;
- `collection` — creating, checking, opening (and upgrading) and describing a collection.

The indexer writes records through `schema` and search reads them through it; no payload key is
spelled outside this package.
"""
