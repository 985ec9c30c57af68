"""The script side of the runner protocol: the SHIPYARD_* variables a training script receives.

The pipeline runner launches a script with these variables; a script run by hand has none of them
and falls back to the nearest shipyard.yaml. This module is the one place in tracking/ that reads
them, so the protocol is documented here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import UsageError

if TYPE_CHECKING:
    from shipyard.workspace import Workspace

RUN_ID = "SHIPYARD_RUN_ID"  # attach to this MLflow run (the runner created it and will end it)
# MLflow's own variable for the same run: `mlflow.start_run()`, `mlflow.log_*` and autolog resume
# it, so a script written only against MLflow logs into the runner's run too.
MLFLOW_RUN_ID = "MLFLOW_RUN_ID"
EXPERIMENT = "SHIPYARD_EXPERIMENT"  # experiment of a standalone run
PARAMS = "SHIPYARD_PARAMS"  # JSON object of hyper-parameters overriding the script's defaults
INPUTS = "SHIPYARD_INPUTS"  # JSON object: input name -> file path
OUTPUTS = "SHIPYARD_OUTPUTS"  # folder the script writes its outputs to
AUTOSTART = "SHIPYARD_AUTOSTART"  # "0" turns off starting a run implicitly on the first log call
DEFAULT_EXPERIMENT = "Default-shipyard"

# Variables that select the workspace; part of the cache key below.
_WORKSPACE_VARS = ("SHIPYARD_WORKSPACE", "SHIPYARD_DATABASE_URI", "SHIPYARD_ARTIFACT_URI")
_workspaces: dict[tuple[str, ...], Workspace] = {}


def run_variables(run_id: str) -> dict[str, str]:
    """What the runner sets for a script that logs into `run_id` (Shipyard's and MLflow's name)."""
    return {RUN_ID: run_id, MLFLOW_RUN_ID: run_id}


def runner_run_id() -> str | None:
    """The run the pipeline runner created for this process, if any."""
    return os.environ.get(RUN_ID) or None


def autostart_enabled() -> bool:
    return os.environ.get(AUTOSTART, "1").strip().lower() not in ("0", "false", "no", "off")


def workspace() -> Workspace:
    """The script's workspace, resolved once per (cwd, workspace variables).

    Resolving runs the store's migrations, which is too slow to repeat for every run.
    """
    from shipyard.workspace import workspace_from_environment

    key = (os.getcwd(), *(os.environ.get(v, "") for v in _WORKSPACE_VARS))
    ws = _workspaces.get(key)
    if ws is None:
        ws = _workspaces[key] = workspace_from_environment()
    return ws


def experiment_name(explicit: str | None) -> str:
    """Experiment of a standalone run: argument > SHIPYARD_EXPERIMENT > shipyard.yaml > default."""
    if explicit:
        return explicit
    if os.environ.get(EXPERIMENT):
        return os.environ[EXPERIMENT]
    from shipyard.config.loader import find_project_file, load_project

    found = find_project_file()
    if found is not None:
        return load_project(found).experiment_name
    return DEFAULT_EXPERIMENT


def _json_object(var: str) -> dict[str, Any]:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{var} is not valid JSON ({exc.msg} at position {exc.pos}): {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f'{var} must be a JSON object like {{"alpha": 0.5}}, got {type(value).__name__}')
    return value


def param_overrides() -> dict[str, Any]:
    """Hyper-parameters passed by the runner (SHIPYARD_PARAMS)."""
    return _json_object(PARAMS)


def input_paths() -> dict[str, str]:
    """Named input files passed by the runner (SHIPYARD_INPUTS)."""
    return {str(k): str(v) for k, v in _json_object(INPUTS).items()}


def outputs_dir() -> Path:
    """SHIPYARD_OUTPUTS, else ./outputs."""
    return Path(os.environ.get(OUTPUTS) or "outputs")
