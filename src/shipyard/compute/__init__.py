"""Compute targets: where a pipeline step's script runs (local process, isolated venv, a host over
SSH, a Ray cluster, spark-submit), behind one interface (base.py). Importing this package imports
no backend."""

from shipyard.compute.base import (
    FINAL_STATES,
    STATES,
    ComputeTarget,
    JobHandle,
    JobResult,
    JobTimeout,
    StepJob,
    run,
)
from shipyard.compute.resolve import get_target

run_job = run  # the name the pipeline uses (run is also the package's verb for it)

__all__ = [
    "get_target",
    "run_job",
    "FINAL_STATES",
    "STATES",
    "ComputeTarget",
    "JobHandle",
    "JobResult",
    "JobTimeout",
    "StepJob",
    "run",
]
