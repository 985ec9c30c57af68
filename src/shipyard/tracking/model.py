"""Models in runs: saving a scikit-learn model in MLflow's format (fast, loadable without MLflow),
and finding the model a run logged through MLflow's own flavors (MLflow 3 logged models)."""

from __future__ import annotations

import functools
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Pinned explicitly: MLflow otherwise infers requirements by importing the model in a subprocess,
# which takes seconds per logged model. What a model of each flavor imports at load time, by
# module (a pyfunc PythonModel's needs are unknown: MLflow infers them).
REQUIREMENT_MODULES = ("sklearn", "numpy", "joblib")
FLAVOR_REQUIREMENTS = {
    "mlflow.sklearn": REQUIREMENT_MODULES,
    "mlflow.pytorch": ("torch", "numpy"),
    "mlflow.xgboost": ("xgboost", "numpy", "sklearn"),
    "mlflow.lightgbm": ("lightgbm", "numpy", "sklearn"),
    "mlflow.spark": ("pyspark",),
}


def pinned_requirements(modules: tuple[str, ...] = REQUIREMENT_MODULES) -> list[str]:
    """`name==version` of the installed distributions that provide `modules` (default: what a
    pickled scikit-learn model needs at load time): scikit-learn for sklearn, xgboost-cpu where
    that is the one installed. A local version label (`2.13.0+cpu`) is dropped, as MLflow does, so
    the pin also installs from an index that only has the public release."""
    reqs = []
    for module in modules:
        dist = _providers().get(module, [_PIP_NAMES.get(module, module)])[0]
        try:
            reqs.append(f"{dist}=={version(dist).split('+', 1)[0]}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


_PIP_NAMES = {"sklearn": "scikit-learn"}  # a module not installed here: the distribution to ask for


@functools.cache
def _providers() -> dict[str, list[str]]:
    """module -> the distributions that install it (read once: it scans every installed one)."""
    from importlib.metadata import packages_distributions

    return {module: list(dists) for module, dists in packages_distributions().items()}


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


# The flavor a model is logged with, by the module of a class in its MRO (the model's own class
# first, so xgboost's scikit-learn wrappers are xgboost models): (module prefix, MLflow flavor).
FLAVORS = (
    ("xgboost", "mlflow.xgboost"),
    ("lightgbm", "mlflow.lightgbm"),
    ("sklearn", "mlflow.sklearn"),
    ("torch", "mlflow.pytorch"),
    ("pyspark.ml", "mlflow.spark"),
)
PYFUNC = "mlflow.pyfunc"


def flavor_of(model: Any) -> str:
    """The MLflow flavor module that logs `model`; UsageError naming the supported ones."""
    from mlflow.pyfunc import PythonModel

    from shipyard.errors import UsageError

    if isinstance(model, PythonModel):
        return PYFUNC
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        for prefix, flavor in FLAVORS:
            if module == prefix or module.startswith(prefix + "."):
                return flavor
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    supported = ", ".join(prefix for prefix, _ in FLAVORS)
    raise UsageError(
        f"log_model: no MLflow flavor for a {kind}: supported are {supported} models and "
        "mlflow.pyfunc.PythonModel (wrap anything else in one)"
    )


def log_flavored_model(model: Any, name: str, input_example: Any = None, signature: Any = None) -> Any:
    """Log `model` into MLflow's active run with its flavor: an MLflow 3 logged model whose MLmodel
    has the run id, the signature (given, or inferred from `input_example`) and the example.
    Requirements are pinned from the installed versions (MLflow would otherwise infer them in a
    subprocess); scikit-learn models keep plain pickle (a scoring script can `joblib.load` them);
    PyTorch models get MLflow's default, a torch.export program (no pickle, no model code needed to
    load). Returns MLflow's ModelInfo."""
    from importlib import import_module

    flavor_name = flavor_of(model)
    flavor = import_module(flavor_name)
    kwargs: dict[str, Any] = {"name": name, "input_example": input_example, "signature": signature}
    if flavor_name in FLAVOR_REQUIREMENTS:
        kwargs["pip_requirements"] = pinned_requirements(FLAVOR_REQUIREMENTS[flavor_name])
    if flavor_name == "mlflow.sklearn":
        kwargs["serialization_format"] = "pickle"
    quiet = logging.getLogger(flavor_name)  # MLflow warns about pickle on every save
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if flavor_name == PYFUNC:
            return flavor.log_model(python_model=model, **kwargs)
        if flavor_name == "mlflow.spark":
            # MLflow's spark flavor still logs a run artifact (`runs:/<run>/<name>`), not a logged
            # model: its log_model takes artifact_path and returns a ModelInfo without model_id.
            return flavor.log_model(model, artifact_path=kwargs.pop("name"), **kwargs)
        return flavor.log_model(model, **kwargs)
    finally:
        quiet.setLevel(level)
