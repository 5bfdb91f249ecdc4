"""The tiny world's files render the same bytes every time, so a benchmark's world is one world."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from model.world.files import write_clip
from model.world.scenes import ALL_MOTIONS


def test_a_clip_encodes_to_the_same_bytes_every_time(tmp_path: Path) -> None:
    """Two renders of one world must train and measure on the same frames; H.264 encoding with
    its default rate control gave about one 8-motion clip in ten another byte stream."""
    for seed in range(8):
        motions = random.Random(seed).sample(ALL_MOTIONS, 8)
        clips = [write_clip(tmp_path / f"{seed}-{n}.mp4", motions, random.Random(seed)) for n in range(12)]
        digests = {hashlib.sha256(clip.read_bytes()).hexdigest() for clip in clips}
        assert len(digests) == 1, f"seed {seed}: {len(digests)} different encodings of one clip"
