"""Saving a scikit-learn model in MLflow's format, fast and loadable without MLflow."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Pinned explicitly: MLflow otherwise infers requirements by importing the model in a subprocess,
# which takes seconds per logged model.
REQUIREMENT_DISTRIBUTIONS = ("scikit-learn", "numpy", "joblib")


def pinned_requirements() -> list[str]:
    """`name==version` of the packages a pickled scikit-learn model needs at load time."""
    reqs = []
    for dist in REQUIREMENT_DISTRIBUTIONS:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def save_sklearn_model(model: Any, dest: Path) -> Path:
    """Write `model` as an MLflow sklearn model folder at `dest` (model.pkl + MLmodel + envs).

    The pickle format is chosen so that `joblib.load(dest / "model.pkl")` works in a scoring
    script without MLflow.
    """
    import mlflow.sklearn

    # MLflow warns about pickle on every save; the format is a deliberate choice here.
    sk_log = logging.getLogger("mlflow.sklearn")
    level = sk_log.level
    sk_log.setLevel(logging.ERROR)
    try:
        mlflow.sklearn.save_model(
            model, str(dest), serialization_format="pickle", pip_requirements=pinned_requirements()
        )
    finally:
        sk_log.setLevel(level)
    return dest
