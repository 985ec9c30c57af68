"""N server processes on one listening socket: fork after binding, supervise, drain on SIGTERM.

Each child builds its own app (and loads the model) and runs uvicorn on the inherited socket; the
kernel spreads connections across them. A child that dies is not restarted (the others go on).
SIGTERM/SIGINT to the parent is passed to every child,
whose uvicorn stops accepting and drains in-flight requests before exiting. With several workers
Prometheus runs in multi-process mode (PROMETHEUS_MULTIPROC_DIR) so /metrics reports them all.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

logger = logging.getLogger("shipyard.serving")


def run_workers(serve: Callable[[], int], workers: int) -> int:
    """Fork `workers` children running `serve()`; return non-zero if any child failed."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os._exit(serve())
        children.append(pid)
    logger.info("started %d workers: %s", workers, children)

    def forward(signum, _frame) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for child in children:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from shipyard.serving.server.metrics import mark_process_dead

            mark_process_dead(child)
        if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGINT):
            failed += 1
    return 1 if failed else 0
