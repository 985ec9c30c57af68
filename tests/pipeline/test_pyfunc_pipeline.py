"""The diabetes example through the whole pipeline with `deployment.entry_script: null`: the MLflow
model itself is packaged and served (pyfunc), smoke-tested with an MLflow `dataframe_split`
payload, and answers /invocations, /ping and the V2 infer route with the trained model's values."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ALL_STEPS = ["data_check", "train", "evaluate", "register", "package", "deploy", "smoke_test"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, copy_project, cli, example_dir, teardown_endpoints):
    root = tmp_path_factory.mktemp("pyfunc-pipeline")
    proj = copy_project(root / "project")
    ws = root / "ws"
    rows = pd.read_csv(example_dir / "data" / "diabetes.csv").drop(columns="target").iloc[[0, 7, 99]]
    assert list(rows.columns) == FEATURES
    sample = {"dataframe_split": {"columns": FEATURES, "data": rows.to_numpy().tolist()}}
    (proj / "pyfunc_sample.json").write_text(json.dumps(sample))
    config_file = proj / "shipyard.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["deployment"]["entry_script"] = None
    config["deployment"]["input_sample"] = "pyfunc_sample.json"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        result = cli("run", "--project", proj, "--workspace", ws, "--output", "json")
        assert result.code == 0, f"exit {result.code}\n{result.out}\n{result.err}"
        yield result.json(), sample, ws
    finally:
        teardown_endpoints(ws)


@pytest.fixture(scope="module")
def http(deployed):
    summary, _, _ = deployed
    headers = {"Authorization": f"Bearer {summary['new_keys']['primary']}"}
    with httpx.Client(timeout=30, trust_env=False, headers=headers) as client:
        yield client


def test_the_run_packages_the_mlflow_model_and_the_smoke_test_passes(deployed, query):
    summary, sample, ws = deployed
    assert summary["status"] == "succeeded" and summary["error"] is None
    assert [s["step"] for s in summary["steps"]] == ALL_STEPS
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}
    assert summary["model"]["name"] == MODEL and summary["model"]["version"] == "1"
    endpoint = summary["endpoint"]
    assert endpoint["smoke_test"] == "passed" and endpoint["auth"] is True
    assert set(summary["new_keys"]) == {"primary", "secondary"}
    [bundle] = query(ws, "select uri, manifest from shipyard_bundles")
    manifest = json.loads(bundle["manifest"])
    assert manifest["flavor"] == "pyfunc" and manifest["entry_script"] is None
    assert manifest["model_name"] == MODEL and str(manifest["model_version"]) == "1"
    assert manifest["input_sample"] == sample
    # No scoring script in the bundle: the MLflow model folder is what is served.
    folder = Path(bundle["uri"].removeprefix("file://"))
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert not (folder / "score.py").exists()
    assert (folder / manifest["model_dir"] / "MLmodel").is_file()


def test_invocations_answer_the_trained_models_predictions(deployed, http, reference_model):
    summary, sample, _ = deployed
    url = summary["endpoint"]["url"]
    _, model = reference_model(0.5)
    expected = model.predict(sample["dataframe_split"]["data"]).tolist()

    r = http.post(f"{url}/invocations", json=sample)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"predictions"}
    assert body["predictions"] == pytest.approx(expected, rel=1e-9)

    # The same rows as records and as plain rows.
    records = [dict(zip(FEATURES, row, strict=True)) for row in sample["dataframe_split"]["data"]]
    r = http.post(f"{url}/invocations", json={"dataframe_records": records})
    assert r.status_code == 200 and r.json()["predictions"] == pytest.approx(expected, rel=1e-9)

    # Keys are required on /invocations; probes stay open.
    assert httpx.post(f"{url}/invocations", json=sample).status_code == 401
    ping = httpx.get(f"{url}/ping")
    assert ping.status_code == 200
    assert httpx.get(f"{url}/").json() == {"status": "healthy"}  # what is served: with a key
    health = http.get(f"{url}/").json()
    assert health["model_name"] == MODEL and health["model_version"] == "1"
    assert health["deployment_id"] == summary["endpoint"]["deployment_id"]


def test_v2_infer_serves_the_same_model(deployed, http, reference_model):
    summary, sample, _ = deployed
    url = summary["endpoint"]["url"]
    _, model = reference_model(0.5)
    data = sample["dataframe_split"]["data"]
    expected = model.predict(data).tolist()

    assert http.get(f"{url}/v2/health/ready").json() == {"ready": True}
    meta = http.get(f"{url}/v2/models/{MODEL}")
    assert meta.status_code == 200 and meta.json()["name"] == MODEL and meta.json()["versions"] == ["1"]
    body = {
        "id": "pyfunc-v2",
        "inputs": [{"name": "inputs", "datatype": "FP64", "shape": [len(data), 10], "data": data}],
    }
    r = http.post(f"{url}/v2/models/{MODEL}/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == MODEL and out["model_version"] == "1" and out["id"] == "pyfunc-v2"
    (output,) = out["outputs"]
    assert output["name"] == "predict" and output["shape"] == [len(data)]
    assert output["data"] == pytest.approx(expected, rel=1e-9)
    r = http.post(f"{url}/v2/models/{MODEL}/versions/1/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == pytest.approx(expected, rel=1e-9)
