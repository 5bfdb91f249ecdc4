"""A file's content fingerprint: what the catalog records of media files and of model weights.

Reading the size and three MiB of a file (its start, middle and end) tells changed content from
unchanged in constant time however large the file, which matters for videos and for a
checkpoint's weights. Recorded fingerprints are compared across runs, so the recipe never changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT_CHUNK = 1024 * 1024  # bytes read at the start, middle and end of a file
FINGERPRINT_BYTES = 16  # blake2b digest size: 128 bits, collisions are not a concern


def fingerprint(path: Path, size: int | None = None) -> str:
    """A content hash from the size and the first, middle and last MiB of the file."""
    size = path.stat().st_size if size is None else size
    digest = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=FINGERPRINT_BYTES)
    with open(path, "rb") as handle:
        if size <= 3 * FINGERPRINT_CHUNK:
            digest.update(handle.read())
            return digest.hexdigest()
        for offset in (0, size // 2 - FINGERPRINT_CHUNK // 2, size - FINGERPRINT_CHUNK):
            handle.seek(offset)
            digest.update(handle.read(FINGERPRINT_CHUNK))
    return digest.hexdigest()
