"""Local processes: a ProcessPoolExecutor whose initializer loads the bundle once per process.

Processes are started with ``spawn``: the parent may hold threads (Rich's progress, MLflow's),
and forking a threaded process can deadlock the child. At most ``2 × workers`` mini-batches are
in flight, so memory stays bounded whatever the input size while every worker has the next
mini-batch waiting.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from shipyard.batch import worker
from shipyard.batch.backends.base import Outcome
from shipyard.batch.source import MiniBatch
from shipyard.errors import ShipyardError, UsageError


class LocalProcesses:
    """Score mini-batches in `workers` local processes."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        workers = workers if workers is not None else (os.cpu_count() or 1)
        if workers < 1:
            raise UsageError(f"--workers {workers}: must be at least 1")
        self.workers = workers

    def score(self, bundle_dir: Path, batches: Iterable[MiniBatch], key: str | None) -> Iterator[Outcome]:
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init,
            initargs=(str(bundle_dir),),
        )
        pending: dict[Future, MiniBatch] = {}
        source = iter(batches)
        try:
            while True:
                while len(pending) < 2 * self.workers:
                    batch = next(source, None)
                    if batch is None:
                        break
                    pending[pool.submit(worker.score, batch.table, key)] = batch
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield self._outcome(bundle_dir, pending.pop(future), future)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _outcome(bundle_dir: Path, batch: MiniBatch, future: Future) -> Outcome:
        try:
            kind, value = future.result()
        except BrokenProcessPool:
            raise ShipyardError(
                f"a batch worker process died while scoring mini-batch {batch.index} (rows "
                f"{batch.first_row}-{batch.end_row - 1}): out of memory, or the model crashed the "
                "interpreter; try fewer --workers or a smaller --mini-batch-rows"
            ) from None
        if kind == worker.LOAD_FAILED:
            raise ShipyardError(f"cannot load the bundle {bundle_dir} in a batch worker: {value}")
        if kind == worker.FAILED:
            return Outcome(batch, None, value)
        return Outcome(batch, value)
