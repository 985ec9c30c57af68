"""Shipyard: local-first MLOps. This module is the public Python API for training scripts.

    import shipyard

    params = shipyard.parameters(alpha=0.5)
    with shipyard.start_run():
        shipyard.log_metric("mse", 3.2, step=1)
        shipyard.log_model(model)

The functions are loaded on first use so that `import shipyard` stays cheap (no mlflow, pandas or
scikit-learn until a run starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it, resolved lazily by __getattr__.
_LAZY = {
    "start_run": "shipyard.tracking.run",
    "active_run": "shipyard.tracking.run",
    "ActiveRun": "shipyard.tracking.run",
    "log_param": "shipyard.tracking.fluent",
    "log_params": "shipyard.tracking.fluent",
    "log_metric": "shipyard.tracking.fluent",
    "log_metrics": "shipyard.tracking.fluent",
    "set_tag": "shipyard.tracking.fluent",
    "log_artifact": "shipyard.tracking.fluent",
    "log_artifacts": "shipyard.tracking.fluent",
    "log_model": "shipyard.tracking.fluent",
    "parameters": "shipyard.tracking.fluent",
    "input_path": "shipyard.tracking.fluent",
    "output_dir": "shipyard.tracking.fluent",
}

__all__ = [
    "ActiveRun",
    "__version__",
    "active_run",
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

if TYPE_CHECKING:
    from shipyard.tracking.fluent import (
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
    from shipyard.tracking.run import ActiveRun, active_run, start_run


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
