"""Models in runs: saving a scikit-learn model in MLflow's format (fast, loadable without MLflow),
and finding the model a run logged through MLflow's own flavors (MLflow 3 logged models)."""

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


MODELS_URI = "models:/"


def logged_model_uri(client: Any, run: Any) -> str | None:
    """`models:/<model_id>` of the model `run` logged with an MLflow flavor (`mlflow.sklearn.log_model`,
    autolog, ...), or None. Several: the one logged at the highest step, else the newest, as
    `mlflow.register_model` picks for a `runs:/` URI."""
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    models = list(found)
    if not models:
        return None
    steps = {o.model_id: o.step for o in (run.outputs.model_outputs if run.outputs else [])}
    best = max(models, key=lambda m: steps.get(m.model_id, -1)) if steps else models[0]
    return f"{MODELS_URI}{best.model_id}"


def model_id_of(source: str) -> str | None:
    """The logged model's id in a `models:/<model_id>` source (not `models:/<name>/<version>`)."""
    rest = source[len(MODELS_URI) :] if source.startswith(MODELS_URI) else ""
    return rest if rest.startswith("m-") and "/" not in rest else None
