"""The backend interface: score a stream of mini-batches with a bundle, somewhere.

The job (``batch.job``) owns reading, ordering, thresholds and output; a backend only maps
mini-batches to outcomes, in any order, each carrying its MiniBatch so the job can restore the
input's order. Two implement it: local processes (``local.py``, a process pool whose
initializer loads the bundle) and a Ray cluster (``ray.py``, Ray Data ``map_batches`` on an
actor pool that loads the bundle once per actor). Both run ``batch.worker``'s init/score, so a
mini-batch gets the same answer, or the same error text, wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shipyard.batch.source import MiniBatch


@dataclass(frozen=True)
class Outcome:
    """A scored mini-batch: its predictions (one per row), or the error that stopped it."""

    batch: MiniBatch
    predictions: list[Any] | None
    error: str | None = None


class Backend(Protocol):
    name: str
    workers: int

    def score(self, bundle_dir: Path, batches: Iterable[MiniBatch], key: str | None) -> Iterator[Outcome]:
        """Outcomes in any order, each mini-batch exactly once; a bundle that does not load
        raises ShipyardError. Closing the iterator early stops the work in flight."""
        ...
