"""A background build that waits at a gate: tests open it to decide when the build finishes.

Run as the build child instead of `indexer.catalog.edge_build` (see `test_graph.py`): it waits
until the file named by $UME_TEST_BUILD_GATE exists, then builds as the real child does; it gives
up when the process that started it dies.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from indexer.catalog.edge_build import main

GATE_ENV = "UME_TEST_BUILD_GATE"


def wait_at_gate(parent: int) -> bool:
    gate = Path(os.environ[GATE_ENV])
    while os.getppid() == parent:
        if gate.exists():
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) if wait_at_gate(os.getppid()) else 1)
