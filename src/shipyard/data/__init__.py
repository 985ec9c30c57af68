"""Datasets: content hashes, checks (pandera schema, missing values, distribution vs a reference).

Public names are imported lazily so that `import shipyard.data` does not import pandas/pandera.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.data.checks import run_data_check
    from shipyard.data.reference import compute_reference_stats, write_reference_stats
    from shipyard.data.report import DataCheckReport, Violation

_EXPORTS = {
    "run_data_check": "shipyard.data.checks",
    "compute_reference_stats": "shipyard.data.reference",
    "write_reference_stats": "shipyard.data.reference",
    "DataCheckReport": "shipyard.data.report",
    "Violation": "shipyard.data.report",
}

__all__ = [
    "DataCheckReport",
    "Violation",
    "compute_reference_stats",
    "run_data_check",
    "write_reference_stats",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'shipyard.data' has no attribute {name!r}")
