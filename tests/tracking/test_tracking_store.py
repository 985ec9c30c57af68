"""Training scripts in a subprocess, checked through a plain MlflowClient on the workspace store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import mlflow.artifacts
import pytest
import yaml
from mlflow import MlflowClient

pytestmark = pytest.mark.integration

PROJECT_YAML = "name: demo\nregistry:\n  model_name: demo-model\n"

TRAIN_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from sklearn.linear_model import Ridge

    import shipyard

    params = shipyard.parameters(alpha=0.5, epochs=100)
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X @ np.array([1.0, -2.0])
    for epoch in range(params["epochs"]):
        shipyard.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    model = Ridge(alpha=params["alpha"]).fit(X, y)
    shipyard.set_tag("kind", "ridge")
    print(shipyard.log_model(model))
    print("RUN_ID", shipyard.active_run().run_id)
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal project folder and an environment free of the developer's SHIPYARD_*/MLFLOW_*."""
    names = {v for v in os.environ if v.startswith(("SHIPYARD_", "MLFLOW_"))}
    for var in names | {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"}:
        # setenv first so that teardown also undoes what mlflow.set_tracking_uri exports.
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    (tmp_path / "shipyard.yaml").write_text(PROJECT_YAML)
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    return tmp_path


def run_script(project: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "train.py"],
        cwd=project,
        env={**os.environ, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def store_client(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project / '.shipyard' / 'shipyard.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_standalone_script_logs_run_metrics_params_and_model(project: Path):
    proc = run_script(project)
    run_id = proc.stdout.split("RUN_ID")[1].strip()
    client = store_client(project)

    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "demo"
    assert run.info.status == "FINISHED"  # ended by the atexit hook
    assert run.data.params == {"alpha": "0.5", "epochs": "100"}
    assert run.data.tags["kind"] == "ridge" and run.data.tags["shipyard.model_artifact"] == "model"
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert loss == [(i, 1.0 / (i + 1)) for i in range(100)]

    # An MLflow 3 logged model of the run, with the run id in its MLmodel.
    uri = proc.stdout.splitlines()[-2].strip()
    assert uri.startswith("models:/m-") and run.data.tags["shipyard.model_id"] == uri.removeprefix("models:/")
    logged = client.get_logged_model(uri.removeprefix("models:/"))
    assert logged.source_run_id == run_id and logged.name == "model"
    local = Path(mlflow.artifacts.download_artifacts(logged.artifact_location, dst_path=str(project / "dl")))
    model = joblib.load(local / "model.pkl")  # plain pickle: a scoring script needs no MLflow
    assert model.alpha == 0.5
    requirements = (local / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "numpy==" in requirements
    assert yaml.safe_load((local / "MLmodel").read_text())["run_id"] == run_id
    # Artifacts live in the workspace, not in ./mlruns.
    assert (project / ".shipyard" / "artifacts").is_dir() and not (project / "mlruns").exists()


def test_script_attaches_to_runner_run_and_leaves_it_running(project: Path):
    import shipyard.workspace as workspace_module

    ws = workspace_module.workspace_from_environment(project)
    client = ws.mlflow
    run_id = client.create_run(ws.experiment_id("pipeline"), run_name="runner").info.run_id

    env = {**ws.environment(), "SHIPYARD_RUN_ID": run_id, "SHIPYARD_PARAMS": '{"alpha": 2.0, "epochs": 5}'}
    proc = run_script(project, env)
    assert proc.stdout.split("RUN_ID")[1].strip() == run_id

    run = store_client(project).get_run(run_id)
    assert run.info.status == "RUNNING"  # the runner, not the script, ends its run
    assert run.data.params == {"alpha": "2.0", "epochs": "5"}
    assert len(client.get_metric_history(run_id, "loss")) == 5
    assert run.data.tags["shipyard.model_artifact"] == "model"
    # No other run was created.
    assert [r.info.run_id for r in client.search_runs([ws.experiment_id("pipeline"), "0"])] == [run_id]


def test_failing_script_marks_standalone_run_failed_and_keeps_metrics(project: Path):
    (project / "train.py").write_text(
        "import shipyard\n"
        "for i in range(2500):\n"
        "    shipyard.log_metric('loss', float(i), step=i)\n"
        "print('RUN_ID', shipyard.active_run().run_id, flush=True)\n"
        "raise SystemError('out of memory')\n"
    )
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=project, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode != 0 and "out of memory" in proc.stderr
    run_id = proc.stdout.split("RUN_ID")[1].strip()
    client = store_client(project)
    assert client.get_run(run_id).info.status == "FAILED"
    assert len(client.get_metric_history(run_id, "loss")) == 2500


def test_log_model_refuses_names_that_leave_its_folder(project: Path, tmp_path: Path):
    names = ["../../escaped", "/abs/escaped", "a/../../escaped", "..", "a\nb"]
    tries = "".join(
        f"try:\n    shipyard.log_model(model, {n!r})\nexcept UsageError as exc:\n    print('REFUSED', exc)\n"
        for n in names
    )
    script = TRAIN_SCRIPT.replace("print(shipyard.log_model(model))", tries)
    (project / "train.py").write_text("from shipyard.errors import UsageError\n" + script)
    nested_tmp = tmp_path / "t1" / "t2"
    nested_tmp.mkdir(parents=True)

    proc = run_script(project, {"TMPDIR": str(nested_tmp)})

    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED artifact name")]
    assert len(refused) == len(names), proc.stdout
    # Before the check, the model folder landed two levels above the temporary folder.
    assert not (tmp_path / "escaped").exists() and not (nested_tmp.parent / "escaped").exists()
