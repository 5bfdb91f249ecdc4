"""Checks both training stages share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from model.train.trainer import Trainer


def assert_resume_is_exact(make_run: Callable[[Path], Trainer], tmp_path: Path) -> None:
    """A run stopped after 2 steps and started again ends exactly where an unbroken run does."""
    straight = make_run(tmp_path / "straight")
    straight.run(progress=False)
    interrupted = make_run(tmp_path / "resumed")
    interrupted.run(stop_after=2, progress=False)
    resumed = make_run(tmp_path / "resumed")
    assert resumed.step == 2
    assert resumed.position == interrupted.position
    resumed.run(progress=False)
    assert resumed.position == straight.position
    want = straight.loaded.model.state_dict()
    for name, got in resumed.loaded.model.state_dict().items():
        torch.testing.assert_close(got, want[name], msg=name)
