"""Start Shipyard's scoring server with one hot-path change patched in, to measure a fix before
making it in src/ (see README.md, "Where Shipyard's time goes"). Same arguments as
`python -m shipyard.serving`; the changes, comma-separated in SHIPYARD_BENCH_PATCH:

- `inline`: call the scoring function on the event loop instead of the 40-thread pool
- `thread1`: call it on one dedicated thread (loop.run_in_executor) instead of the pool
- `quiet`: no access-log line per request, and request ids from random.getrandbits, not uuid4
"""

from __future__ import annotations

import os
import sys


def patch(changes: set[str]) -> None:
    import asyncio
    import contextvars
    import functools
    import logging
    import random
    import types
    from concurrent.futures import ThreadPoolExecutor

    from shipyard.serving import limits, middleware

    if "inline" in changes:

        async def inline(fn, *args):
            return fn(*args)

        limits.run_in_threadpool = inline
    if "thread1" in changes:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")

        async def one_thread(fn, *args):
            call = functools.partial(contextvars.copy_context().run, fn, *args)
            return await asyncio.get_running_loop().run_in_executor(executor, call)

        limits.run_in_threadpool = one_thread
    if "quiet" in changes:
        logging.getLogger("shipyard.serving.access").disabled = True

        class _Id:
            __slots__ = ("hex",)

            def __init__(self) -> None:
                self.hex = f"{random.getrandbits(128):032x}"

        middleware.uuid = types.SimpleNamespace(uuid4=_Id)


if __name__ == "__main__":
    patch({c for c in os.environ.get("SHIPYARD_BENCH_PATCH", "").split(",") if c})
    from shipyard.serving.__main__ import main

    sys.exit(main())
