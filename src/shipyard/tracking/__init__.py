"""Runs on top of MLflow: buffered metric logging, a run context for scripts, lineage tags.

Importing this package does not import mlflow; that happens when the first run starts.
"""

from shipyard.tracking.buffer import MetricBuffer
from shipyard.tracking.fluent import (
    current_run,
    flush,
    input_path,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    output_dir,
    parameters,
    set_tag,
)
from shipyard.tracking.run import MODEL_TAG, PARENT_TAG, ActiveRun, active_run, end_all_runs, start_run

__all__ = [
    "MODEL_TAG",
    "PARENT_TAG",
    "ActiveRun",
    "MetricBuffer",
    "active_run",
    "current_run",
    "end_all_runs",
    "flush",
    "input_path",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "output_dir",
    "parameters",
    "set_tag",
    "start_run",
]
