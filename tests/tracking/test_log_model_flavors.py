"""shipyard.log_model with each MLflow flavor it supports, for real (scikit-learn, XGBoost,
LightGBM, PyTorch, an mlflow.pyfunc.PythonModel; Spark ML in tests/compute/test_spark_model.py):
an MLflow 3 logged model of the run with its run id, the signature inferred from the example,
requirements pinned to the distributions installed here, and a pyfunc that loads in this process
and predicts what the model itself predicts. An object of no known flavor is refused in one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pytest
import yaml

import shipyard
from shipyard.errors import UsageError
from shipyard.tracking import end_all_runs, env

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flavors") / ".shipyard"


@pytest.fixture
def ws(store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    for var in ("SHIPYARD_RUN_ID", "MLFLOW_RUN_ID", "SHIPYARD_DATABASE_URI", "SHIPYARD_ARTIFACT_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # restored after the test (log_model sets it)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHIPYARD_WORKSPACE", str(store_dir))
    monkeypatch.setenv("SHIPYARD_EXPERIMENT", request.node.name.replace("[", "-").rstrip("]"))
    yield env.workspace()
    end_all_runs()


def _sklearn() -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=0.1).fit(X, Y)
    return model, model.predict


def _xgboost() -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    import xgboost

    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3).fit(X, Y)
    return model, model.predict


def _lightgbm() -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    import lightgbm

    model = lightgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1).fit(X, Y)
    return model, model.predict


def _torch() -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return model, predict


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        return np.asarray(model_input).sum(axis=1) * 2


def _pyfunc() -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    return Doubler(), lambda x: x.sum(axis=1) * 2


CASES = {
    "sklearn": (_sklearn, "sklearn", ["scikit-learn==", "numpy==", "joblib=="]),
    "xgboost": (_xgboost, "xgboost", ["xgboost-cpu==", "numpy==", "scikit-learn=="]),
    "lightgbm": (_lightgbm, "lightgbm", ["lightgbm==", "numpy==", "scikit-learn=="]),
    "torch": (_torch, "pytorch", ["torch==", "numpy=="]),
    "pyfunc": (_pyfunc, "python_function", None),  # a PythonModel's requirements: MLflow infers them
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_model_logs_each_flavor_as_a_loadable_logged_model(ws, case: str) -> None:
    make, flavor, pins = CASES[case]
    model, predict = make()
    with shipyard.start_run(name=case) as run:
        uri = shipyard.log_model(model, "model", input_example=X[:3])
    model_id = uri.removeprefix("models:/")
    assert uri.startswith("models:/m-")
    client = ws.mlflow
    tags = client.get_run(run.run_id).data.tags
    assert tags["shipyard.model_id"] == model_id and tags["shipyard.model_artifact"] == "model"
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run.run_id and logged.name == "model"

    folder = Path(logged.artifact_location.removeprefix("file://"))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert flavor in mlmodel["flavors"] and mlmodel["run_id"] == run.run_id
    assert mlmodel["signature"]["inputs"]  # inferred from the example
    assert (folder / "input_example.json").is_file()
    if pins is not None:
        requirements = (folder / "requirements.txt").read_text().splitlines()
        for pin in pins:
            assert any(line.startswith(pin) and "+" not in line for line in requirements), requirements

    loaded = mlflow.pyfunc.load_model(str(folder))
    got = np.asarray(loaded.predict(X[:5])).reshape(-1)
    np.testing.assert_allclose(got, np.asarray(predict(X[:5])).reshape(-1), rtol=1e-5, atol=1e-5)


def test_an_object_of_no_known_flavor_is_refused_naming_the_supported_ones(ws) -> None:
    with pytest.raises(UsageError, match=r"no MLflow flavor for a builtins.dict.*xgboost.*PythonModel"):
        shipyard.log_model({"weights": [1, 2]}, "model")
