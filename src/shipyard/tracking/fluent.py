"""Module-level logging functions for plain training scripts, and the script helpers.

Each function logs to the innermost active run. Without one, the first call starts a run
implicitly (attached to the runner's run under the pipeline runner, else a new standalone run),
so `shipyard.log_metric("x", 1)` works in a bare script; an atexit hook ends that run.
"""

from __future__ import annotations

import os
from typing import Any

from shipyard.errors import UsageError
from shipyard.tracking import env
from shipyard.tracking.run import ActiveRun, _start, active_run


def current_run() -> ActiveRun:
    """The active run, starting one implicitly if allowed (see SHIPYARD_AUTOSTART)."""
    run = active_run()
    if run is not None:
        return run
    if not env.autostart_enabled():
        raise UsageError(
            "no active run: wrap the code in `with shipyard.start_run():` "
            f"(implicit runs are turned off by {env.AUTOSTART}=0)"
        )
    return _start(None, None, False, None, implicit=True)


def log_param(key: str, value: Any) -> None:
    """Log one parameter to the active run."""
    current_run().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    """Log several parameters to the active run."""
    current_run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Queue one metric value on the active run (buffered; returns in microseconds)."""
    current_run().buffer.log_metric(key, value, step)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Queue several metric values on the active run."""
    current_run().buffer.log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run."""
    current_run().set_tag(key, value)


def log_artifact(path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Copy a local file into the active run's artifacts."""
    current_run().log_artifact(path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Copy a local folder into the active run's artifacts."""
    current_run().log_artifacts(local_dir, artifact_path)


def log_model(model: Any, name: str = "model", *, input_example: Any = None, signature: Any = None) -> str:
    """Log `model` with its MLflow flavor into the active run (an MLflow 3 logged model, with the
    signature given or inferred from `input_example`); returns `models:/<model_id>`."""
    return current_run().log_model(model, name, input_example=input_example, signature=signature)


def flush() -> None:
    """Write the active run's queued metrics now (no-op without an active run)."""
    run = active_run()
    if run is not None:
        run.flush()


# -- script helpers ------------------------------------------------------------------------------
def parameters(**defaults: Any) -> dict[str, Any]:
    """The script's hyper-parameters: `defaults` overridden by the runner's SHIPYARD_PARAMS.

    The result is logged as run parameters (starting a run if none is active).
    Keys in SHIPYARD_PARAMS without a default are kept: the pipeline config may add parameters.
    """
    params = {**defaults, **env.param_overrides()}
    if params:
        log_params(params)
    return params


def input_path(name: str, default: str | os.PathLike[str] | None = None) -> str:
    """Path of input `name`: from the runner's SHIPYARD_INPUTS, else `default`. A `str`, as every
    reader takes it (Spark's and Ray Data's refuse a pathlib.Path)."""
    given = env.input_paths().get(name)
    if given is not None:
        return str(given)
    if default is None:
        raise UsageError(
            f"input {name!r} was not passed (set train.inputs.{name} in shipyard.yaml) and has no default"
        )
    return os.fspath(default)


def output_dir() -> str:
    """Folder for the script's outputs (SHIPYARD_OUTPUTS, else ./outputs), created if missing; a `str`
    like input_path."""
    path = env.outputs_dir()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
