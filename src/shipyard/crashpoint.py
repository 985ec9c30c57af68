"""A test-only pause at a named point, so that a test can `kill -9` a real process there.

With `SHIPYARD_TEST_PAUSE_AT=<point>` (e.g. `deploy:spawned`) the process writes its pid to the
file named by `SHIPYARD_TEST_PAUSE_FILE` when it reaches that point, then sleeps (at most 10
minutes) until it is killed. Unset — always, outside tests — `pause_at` is a dictionary lookup.
Points: `deploy:spawned` (the scoring server was started, its pid not yet recorded),
`deploy:recorded` (its pid recorded, not yet healthy) and `venv:installed` (an environment's
packages installed, its marker not yet written).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_MAX_PAUSE_S = 600.0


def pause_at(point: str) -> None:
    if os.environ.get("SHIPYARD_TEST_PAUSE_AT") != point:
        return
    marker = os.environ.get("SHIPYARD_TEST_PAUSE_FILE")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(_MAX_PAUSE_S)
