"""A training script written only against MLflow (no `import shipyard`): `mlflow.sklearn.autolog()`
and `mlflow.log_metric` land in the pipeline's own train run (MLFLOW_RUN_ID), the gate reads its
metric, the model autolog logged (an MLflow 3 logged model) is registered with its model id, and
the bundle made from it serves. Nothing goes to MLflow's "Default" experiment or to ./mlruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tools import require_tool

pytestmark = pytest.mark.integration

MLFLOW_ONLY = '''"""Ridge on the diabetes data, tracked with MLflow alone."""

import mlflow
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

mlflow.sklearn.autolog()  # parameters, training metrics and the model (MLflow 3 logged model)
df = pd.read_csv("data/diabetes.csv")
X, y = df.drop(columns="target"), df["target"]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
with mlflow.start_run():  # resumes the run the pipeline made for this step (MLFLOW_RUN_ID)
    model = Ridge(alpha=0.5).fit(X_train.to_numpy(), y_train)
    mlflow.log_metric("mse", float(mean_squared_error(y_test, model.predict(X_test.to_numpy()))))
    mlflow.log_metric("eval_rows", len(y_test))
'''


def test_a_script_that_only_knows_mlflow_trains_is_gated_registers_and_serves(
    tmp_path: Path, copy_project, shipyard_proc, mlflow_client, teardown_endpoints
) -> None:
    require_tool("nginx", "nginx")
    project = copy_project(tmp_path / "project")
    (project / "train.py").write_text(MLFLOW_ONLY)
    ws = tmp_path / "ws"
    try:
        res = shipyard_proc("run", "--workspace", ws, "-o", "json", cwd=project, timeout=400)
        assert res.code == 0, res.err[-3000:]
        out = json.loads(res.out)
        client = mlflow_client(ws)
        run = client.get_run(out["run"]["run_id"])
        assert 2500 < run.data.metrics["mse"] < 3500 and run.data.metrics["eval_rows"] == 89
        assert "training_score" in run.data.metrics and run.data.params["alpha"] == "0.5"  # autolog
        assert out["gate"]["verdict"] == "passed" and out["endpoint"]["smoke_test"] == "passed"

        version = client.get_model_version("diabetes-ridge", "1")
        assert version.run_id == run.info.run_id and version.source.startswith("models:/m-")
        logged = client.get_logged_model(version.source.removeprefix("models:/"))
        assert logged.source_run_id == run.info.run_id and logged.name == "model"
        assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": "diabetes-ridge", "version": "1"}]

        experiments = {e.name: e.experiment_id for e in client.search_experiments()}
        default = experiments.get("Default")
        assert default is None or not client.search_runs([default])  # nothing went astray
        assert not (project / "mlruns").exists()
    finally:
        teardown_endpoints(ws)
