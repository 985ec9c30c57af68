"""Compute targets: where a pipeline step's script runs (local process, isolated venv; later SSH,
Ray, Spark), behind one interface (base.py). Importing this package imports no backend."""

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

run_job = run  # the name the pipeline uses (run is also the package's verb for it)


def get_target(name: str, ws: object = None) -> ComputeTarget:
    """The compute target called `name`: local (this Python) or venv (an isolated environment
    per spec, cached in the workspace `ws`)."""
    if name == "local":
        from shipyard.compute.local import LocalTarget

        return LocalTarget()
    if name == "venv":
        from shipyard.compute.venv import VenvTarget

        return VenvTarget(ws)
    from shipyard.errors import ConfigError

    raise ConfigError(f"compute target {name!r} does not exist: use local or venv")


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
