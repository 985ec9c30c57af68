"""A pyfunc bundle end to end in a real workspace: log, register, package without score.py, load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from shipyard.config.models import DeploymentConfig, ProjectConfig, RegistryConfig, WorkspaceSettings
from shipyard.errors import ConfigError
from shipyard.packaging.bundle import build_bundle, bundle_for_deployment
from shipyard.registry.models import ModelVersionInfo, register
from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.loader import load_servable
from shipyard.serving.mlflow.pyfunc import PyfuncModel
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
MODEL = "diabetes-pyfunc"

SCORE_PY = """\
import json, os
from pathlib import Path
import joblib, numpy as np
model = None
def init():
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")
def run(raw_data):
    return {"result": model.predict(np.array(json.loads(raw_data)["data"], dtype=float)).tolist()}
"""


@pytest.fixture
def ws(tmp_path: Path):
    workspace = Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "ws")))
    yield workspace
    workspace.store.dispose()


def _log_and_register(
    ws: Workspace, tmp_path: Path, *, signature: bool = True
) -> tuple[ModelVersionInfo, Ridge]:
    """An MLflow sklearn model logged to a run of the workspace and registered as a new version."""
    import mlflow.models
    import mlflow.sklearn

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(40, 10)), columns=COLUMNS)
    y = x.to_numpy() @ np.arange(1, 11) + 3.0
    ridge = Ridge(alpha=1.0).fit(x, y)
    local = tmp_path / "saved-model"
    mlflow.sklearn.save_model(
        ridge,
        str(local),
        signature=mlflow.models.infer_signature(x, y) if signature else None,
        serialization_format="pickle",
    )
    client = ws.mlflow
    run = client.create_run(ws.experiment_id("pyfunc-test"))
    client.log_artifacts(run.info.run_id, str(local), "model")
    client.set_terminated(run.info.run_id)
    version, created = register(ws, MODEL, run.info.run_id, f"{run.info.artifact_uri}/model")
    assert created
    return version, ridge


def _sample(tmp_path: Path, rows: pd.DataFrame) -> Path:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps({"dataframe_split": rows.to_dict(orient="split")}))
    return path


def test_build_bundle_without_entry_script_serves_the_mlflow_model(ws: Workspace, tmp_path: Path) -> None:
    version, ridge = _log_and_register(ws, tmp_path)
    rows = pd.DataFrame(np.arange(20, dtype=float).reshape(2, 10), columns=COLUMNS)
    sample = _sample(tmp_path, rows)

    bundle = build_bundle(ws, version, entry_script=None, requirements=None, input_sample=sample)

    path = Path(bundle.path)
    assert bundle.manifest["flavor"] == "pyfunc"
    assert bundle.manifest["entry_script"] is None
    assert bundle.manifest["input_sample"] == json.loads(sample.read_text())
    assert not (path / "score.py").exists()
    assert (path / bundle.manifest["model_dir"] / "MLmodel").is_file()
    assert json.loads((path / "manifest.json").read_text()) == bundle.manifest

    servable = load_servable(path)
    assert isinstance(servable, PyfuncModel)
    assert (servable.model_name, servable.model_version) == (MODEL, version.version)
    expected = ridge.predict(rows).tolist()
    assert servable.predict_payload(bundle.manifest["input_sample"]) == pytest.approx(expected)
    assert servable.predict_rows(rows.to_numpy().tolist()) == pytest.approx(expected)

    # identical content reuses the recorded bundle
    again = build_bundle(ws, version, entry_script=None, requirements=None, input_sample=sample)
    assert (again.id, again.path) == (bundle.id, bundle.path)


def test_entry_script_bundle_is_azureml_and_differs(ws: Workspace, tmp_path: Path) -> None:
    version, _ = _log_and_register(ws, tmp_path, signature=False)
    script = tmp_path / "score.py"
    script.write_text(SCORE_PY)
    azure = build_bundle(ws, version, entry_script=script, requirements=None, input_sample=None)
    pyfunc = build_bundle(ws, version, entry_script=None, requirements=None, input_sample=None)
    assert azure.manifest["flavor"] == "azureml"
    assert azure.manifest["entry_script"] == "score.py"
    assert pyfunc.manifest["flavor"] == "pyfunc"
    assert azure.content_hash != pyfunc.content_hash
    assert isinstance(load_servable(azure.path), ScoringScript)
    assert isinstance(load_servable(pyfunc.path), PyfuncModel)


def test_bundle_for_deployment_with_null_entry_script(ws: Workspace, tmp_path: Path) -> None:
    version, ridge = _log_and_register(ws, tmp_path)
    rows = pd.DataFrame(np.ones((1, 10)), columns=COLUMNS)
    _sample(tmp_path, rows)
    project = ProjectConfig(
        name="pyfunc-test",
        registry=RegistryConfig(model_name=MODEL),
        deployment=DeploymentConfig(entry_script=None, input_sample="sample.json"),
        project_dir=tmp_path,
    )
    bundle = bundle_for_deployment(ws, version, project)
    assert bundle.manifest["flavor"] == "pyfunc"
    served = load_servable(bundle.path)
    assert served.predict_rows([[1.0] * 10]) == pytest.approx(ridge.predict(rows).tolist())


def test_a_model_without_pyfunc_flavor_needs_an_entry_script(ws: Workspace, tmp_path: Path) -> None:
    import joblib

    local = tmp_path / "plain"
    local.mkdir()
    joblib.dump(Ridge().fit(np.eye(3), [1, 2, 3]), local / "model.pkl")
    client = ws.mlflow
    run = client.create_run(ws.experiment_id("pyfunc-test"))
    client.log_artifacts(run.info.run_id, str(local), "model")
    version, _ = register(ws, MODEL, run.info.run_id, f"{run.info.artifact_uri}/model")
    with pytest.raises(ConfigError, match="not an MLflow model .*deployment.entry_script"):
        build_bundle(ws, version, entry_script=None, requirements=None, input_sample=None)


def test_a_pyfunc_bundle_keeps_what_the_model_needs_beside_the_deployments_requirements(
    ws: Workspace, tmp_path: Path
) -> None:
    """deployment.requirements of an MLflow-model bundle: the deployment's pins win, and what the
    model's own requirements.txt names besides (mlflow itself, which the pyfunc loader imports)
    is added; a score.py bundle gets the deployment's file as it is."""
    version, _ = _log_and_register(ws, tmp_path)
    given = tmp_path / "requirements.txt"
    given.write_text("scikit-learn==1.4.0\npandas\n")
    bundle = build_bundle(ws, version, entry_script=None, requirements=given, input_sample=None)
    lines = (Path(bundle.path) / "requirements.txt").read_text().splitlines()
    model_lines = (Path(bundle.path) / bundle.manifest["model_dir"] / "requirements.txt").read_text().split()
    assert lines[:2] == ["scikit-learn==1.4.0", "pandas"]  # the deployment's, first and unchanged
    assert any(line.startswith("mlflow") for line in lines)
    assert not any(line.startswith(("scikit-learn", "pandas")) for line in lines[2:])  # its own won
    assert {m for m in model_lines if not m.startswith(("scikit-learn", "pandas"))} <= set(lines)

    script = tmp_path / "score.py"
    script.write_text(SCORE_PY)
    azure = build_bundle(ws, version, entry_script=script, requirements=given, input_sample=None)
    assert (Path(azure.path) / "requirements.txt").read_text() == given.read_text()
