"""Where a batch job's workers run: one module per backend behind `base.Backend`."""

from __future__ import annotations

from shipyard.batch.backends.base import Backend, Outcome
from shipyard.batch.backends.local import LocalProcesses

__all__ = ["Backend", "LocalProcesses", "Outcome"]
