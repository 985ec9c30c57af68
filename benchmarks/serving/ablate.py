"""Start Shipyard's scoring server with one hot-path change patched in, to measure a fix before
making it in src/ (see README.md, "Where Shipyard's time goes"). Same arguments as
`python -m shipyard.serving`; the changes, comma-separated in SHIPYARD_BENCH_PATCH:

- `inline`: call the scoring function on the event loop instead of the scoring thread (no
  scoring timeout then: a measurement, not a setting)
- `quiet`: no access-log line per request
- `slow`: `POST /score` through Starlette's middleware stack and router, not the fast path
"""

from __future__ import annotations

import os
import sys


def patch(changes: set[str]) -> None:
    import logging

    from shipyard.serving.server import fastpath, limits

    if "inline" in changes:

        async def inline(self, fn, *args):
            await self._acquire()
            try:
                return fn(*args)
            finally:
                self._release()

        limits.ScoringSlots.call = inline
    if "quiet" in changes:
        logging.getLogger("shipyard.serving.access").disabled = True
    if "slow" in changes:
        fastpath.ServingApp.__call__ = fastpath.Starlette.__call__


if __name__ == "__main__":
    patch({c for c in os.environ.get("SHIPYARD_BENCH_PATCH", "").split(",") if c})
    from shipyard.serving.__main__ import main

    sys.exit(main())
