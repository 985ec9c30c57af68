"""PyfuncModel and the MLflow scoring routes on a real MLflow sklearn model folder, in-process."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.testclient import TestClient

from shipyard.serving.loader import bundle_flavor, load_servable
from shipyard.serving.manifest import BundleError
from shipyard.serving.mlflow.payloads import PyfuncBodyError, PyfuncSchemaError, UnsupportedContentTypeError
from shipyard.serving.mlflow.pyfunc import PyfuncModel
from shipyard.serving.mlflow.routes import pyfunc_routes
from shipyard.serving.servable import PredictionShapeError, Servable
from shipyard.serving.validation import MalformedBodyError, ScoringInputError

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _save(model: Any, dest: Path, x: Any, y: Any) -> None:
    import mlflow.models
    import mlflow.sklearn

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # the pickle-format warning
    mlflow.sklearn.save_model(
        model,
        str(dest),
        signature=mlflow.models.infer_signature(x, y),
        serialization_format="pickle",
    )


def _bundle(root: Path, save: Any) -> Path:
    """manifest.json (flavor pyfunc, no entry script) + model/<name>/<version>/ under root."""
    model_dir = root / "model" / "diabetes-ridge" / "7"
    model_dir.parent.mkdir(parents=True)
    save(model_dir)
    manifest = {
        "model_name": "diabetes-ridge",
        "model_version": 7,
        "flavor": "pyfunc",
        "entry_script": None,
        "model_dir": "model/diabetes-ridge/7",
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def frame_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ridge, pd.DataFrame]:
    """A Ridge fitted on a DataFrame with the diabetes columns; column-based signature."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(40, 10)), columns=COLUMNS)
    y = x.to_numpy() @ np.arange(1, 11) + 3.0
    ridge = Ridge(alpha=1.0).fit(x, y)
    root = _bundle(tmp_path_factory.mktemp("frame"), lambda d: _save(ridge, d, x, y))
    return root, ridge, x.head(3)


@pytest.fixture(scope="module")
def tensor_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ridge, np.ndarray]:
    """A Ridge fitted on a numpy array; tensor-based signature (float64, [-1, 10])."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 10))
    ridge = Ridge(alpha=1.0).fit(x, x @ np.arange(1, 11))
    root = _bundle(tmp_path_factory.mktemp("tensor"), lambda d: _save(ridge, d, x, x @ np.arange(1, 11)))
    return root, ridge, x[:3]


@pytest.fixture(scope="module")
def model(frame_model) -> PyfuncModel:
    return PyfuncModel.load(frame_model[0])


@pytest.fixture(scope="module")
def client(model: PyfuncModel) -> TestClient:
    app = Starlette(routes=pyfunc_routes())

    async def call(fn, *args):
        return await run_in_threadpool(fn, *args)

    app.state.servable = model
    app.state.ready = True
    app.state.call = call
    return TestClient(app)


def _expected(frame_model) -> list[float]:
    _, ridge, x = frame_model
    return ridge.predict(x).tolist()


# -- loading and the Servable protocol -------------------------------------------------------------
def test_load_reads_manifest_and_is_a_servable(model: PyfuncModel, frame_model) -> None:
    assert isinstance(model, Servable)
    assert model.model_name == "diabetes-ridge"
    assert model.model_version == "7"
    assert model.manifest["flavor"] == "pyfunc"
    assert bundle_flavor(frame_model[0]) == "pyfunc"
    assert isinstance(load_servable(frame_model[0]), PyfuncModel)


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"flavor": "pyfunc", "model_dir": "model"}))
    with pytest.raises(BundleError, match="no MLmodel file"):
        PyfuncModel.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"flavor": "tensorflow-serving"}))
    with pytest.raises(BundleError, match="unknown flavor 'tensorflow-serving'"):
        load_servable(tmp_path)


def test_input_spec_from_column_signature(model: PyfuncModel) -> None:
    assert model.input_spec() == {"name": "inputs", "datatype": "FP64", "shape": [-1, 10]}


def test_input_spec_from_tensor_signature(tensor_model) -> None:
    served = PyfuncModel.load(tensor_model[0])
    assert served.input_spec() == {"name": "inputs", "datatype": "FP64", "shape": [-1, 10]}


def test_input_spec_falls_back_to_the_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 4))
    ridge = Ridge().fit(x, x.sum(axis=1))

    def save(dest: Path) -> None:
        import mlflow.sklearn

        mlflow.sklearn.save_model(ridge, str(dest), serialization_format="pickle")  # no signature

    root = _bundle(tmp_path, save)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["signature"] = {"inputs": {"data": {"type": "array", "shape": [-1, 4], "dtype": "float"}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    served = PyfuncModel.load(root)
    assert served.input_spec() == {"name": "data", "datatype": "FP64", "shape": [-1, 4]}
    assert served.predict_rows(x[:2].tolist()) == pytest.approx(ridge.predict(x[:2]).tolist())


def test_predict_rows_uses_the_signature_columns(model: PyfuncModel, frame_model) -> None:
    rows = frame_model[2].to_numpy().tolist()
    assert model.predict_rows(rows) == pytest.approx(_expected(frame_model))
    # integers are cast to the signature's doubles, as MLflow does
    assert model.predict_rows([[1] * 10]) == pytest.approx(frame_model[1].predict(np.ones((1, 10))).tolist())


def test_predict_rows_tensor_model(tensor_model) -> None:
    root, ridge, x = tensor_model
    assert PyfuncModel.load(root).predict_rows(x.tolist()) == pytest.approx(ridge.predict(x).tolist())


def test_predict_rows_rejects_rows_of_the_wrong_width(model: PyfuncModel) -> None:
    with pytest.raises(PyfuncSchemaError, match=r"rows\[1\]: expected 10 values \(age, sex") as err:
        model.predict_rows([[0.0] * 10, [0.0] * 9])
    assert err.value.field == "rows[1]"
    assert err.value.status_code == 422
    with pytest.raises(ScoringInputError, match="non-empty list"):
        model.predict_rows([])


def test_predict_rows_names_a_column_that_does_not_convert(model: PyfuncModel) -> None:
    with pytest.raises(PyfuncSchemaError, match="column bmi") as err:
        model.predict_rows([[0, 0, "heavy", 0, 0, 0, 0, 0, 0, 0]])
    assert err.value.field == "bmi"


def test_predict_rows_checks_the_prediction_count(model: PyfuncModel, monkeypatch) -> None:
    monkeypatch.setattr(model, "_predict", lambda data, params: np.zeros(len(data) - 1))
    with pytest.raises(PredictionShapeError, match="returned 1 predictions for 2 rows"):
        model.predict_rows([[0.0] * 10, [1.0] * 10])


# -- payload formats -------------------------------------------------------------------------------
def _payloads(x: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataframe_split": {"dataframe_split": x.to_dict(orient="split")},
        "dataframe_split without index": {
            "dataframe_split": {"columns": list(x.columns), "data": x.to_numpy().tolist()}
        },
        "dataframe_records": {"dataframe_records": x.to_dict(orient="records")},
        "instances as records": {"instances": x.to_dict(orient="records")},
        "inputs as columns": {"inputs": x.to_dict(orient="list")},
        "inputs as rows": {"inputs": x.to_numpy().tolist()},
        "instances as rows": {"instances": x.to_numpy().tolist()},
        "with params and an unknown key": {"inputs": x.to_dict(orient="list"), "params": {}, "extra": 1},
    }


@pytest.mark.parametrize("kind", list(_payloads(pd.DataFrame(columns=COLUMNS))))
def test_each_json_format_predicts_like_the_model(model: PyfuncModel, frame_model, kind: str) -> None:
    payload = _payloads(frame_model[2])[kind]
    expected = _expected(frame_model)
    assert model.predict_payload(json.dumps(payload).encode(), "application/json") == pytest.approx(expected)
    assert model.predict_payload(payload, "application/json") == pytest.approx(expected)  # pre-decoded


def test_csv_predicts_like_the_model(model: PyfuncModel, frame_model) -> None:
    body = frame_model[2].to_csv(index=False)
    assert model.predict_payload(body.encode(), "text/csv") == pytest.approx(_expected(frame_model))
    assert model.predict_payload(body, "text/csv; charset=utf-8") == pytest.approx(_expected(frame_model))


def test_parquet_predicts_like_the_model(model: PyfuncModel, frame_model) -> None:
    buf = io.BytesIO()
    frame_model[2].to_parquet(buf)
    got = model.predict_payload(buf.getvalue(), "application/vnd.apache.parquet")
    assert got == pytest.approx(_expected(frame_model))


def test_tensor_model_takes_inputs_and_instances(tensor_model) -> None:
    root, ridge, x = tensor_model
    served = PyfuncModel.load(root)
    for key in ("inputs", "instances"):
        got = served.predict_payload(json.dumps({key: x.tolist()}), "application/json")
        assert got == pytest.approx(ridge.predict(x).tolist())


# -- malformed, ambiguous and mismatched payloads ----------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "valid JSON formatted string"),
        (b"\xff\xfe", "valid JSON formatted string"),
        (b"[[1, 2]]", "Received a list"),
        (b'{"data": [[1, 2]]}', "exactly one of the input fields"),
        (b'{"inputs": [[1]], "instances": [[1]]}', "exactly one of the input fields"),
        (b'{"dataframe_split": [[1, 2]]}', "Dataframe split format must be a dictionary. Got list"),
        (b'{"dataframe_split": {"columns": ["age"]}}', "must have 'data' field"),
        (b'{"dataframe_records": {"age": 1}}', "must be a list of records. Got dictionary"),
        (b'{"inputs": [[1]], "params": [1]}', "'params' must be a JSON object"),
    ],
)
def test_malformed_json_is_a_body_error(model: PyfuncModel, body: bytes, message: str) -> None:
    with pytest.raises(MalformedBodyError, match=message) as err:
        model.predict_payload(body, "application/json")
    assert isinstance(err.value, PyfuncBodyError)
    assert err.value.status_code == 400
    assert err.value.error_code == "BAD_REQUEST"


def test_split_rows_of_the_wrong_width_are_named(model: PyfuncModel) -> None:
    body = {"dataframe_split": {"columns": ["age", "sex"], "data": [[1, 2], [1]]}}
    with pytest.raises(PyfuncBodyError, match=r"data\[1\]: expected 2 values") as err:
        model.predict_payload(body)
    assert err.value.field == "dataframe_split.data[1]"


def test_missing_column_is_a_schema_error_naming_it(model: PyfuncModel, frame_model) -> None:
    x = frame_model[2].drop(columns=["bmi"])
    with pytest.raises(PyfuncSchemaError, match=r"missing inputs \['bmi'\]") as err:
        model.predict_payload({"dataframe_split": x.to_dict(orient="split")})
    assert err.value.field == "bmi"
    assert err.value.status_code == 422
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_wrong_type_is_a_schema_error_naming_the_column(model: PyfuncModel, frame_model) -> None:
    records = frame_model[2].to_dict(orient="records")
    records[1]["s3"] = "high"
    with pytest.raises(PyfuncSchemaError, match="Failed to convert column s3") as err:
        model.predict_payload({"dataframe_records": records})
    assert err.value.field == "s3"


def test_rows_of_the_wrong_width_for_a_column_model(model: PyfuncModel) -> None:
    with pytest.raises(PyfuncSchemaError, match=r"inputs\[0\]: expected 10 values") as err:
        model.predict_payload({"inputs": [[1, 2, 3]]})
    assert err.value.field == "inputs[0]"


def test_csv_errors(model: PyfuncModel, frame_model) -> None:
    x = frame_model[2].astype(object)
    x.loc[0, "bp"] = "n/a-ish"
    with pytest.raises(PyfuncSchemaError, match="column bp") as err:
        model.predict_payload(x.to_csv(index=False), "text/csv")
    assert err.value.field == "bp"
    with pytest.raises(PyfuncBodyError, match="CSV body is empty"):
        model.predict_payload(b"", "text/csv")
    with pytest.raises(PyfuncSchemaError, match=r"missing inputs \['sex'"):
        model.predict_payload(frame_model[2].drop(columns=["sex"]).to_csv(index=False), "text/csv")


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "no Content-Type header"),
        ("application/xml", "only supports the following content types"),
        ("application/json; charset=latin-1", "only supports UTF-8"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters: format"),
    ],
)
def test_unsupported_content_types(model: PyfuncModel, content_type: str | None, message: str) -> None:
    with pytest.raises(UnsupportedContentTypeError, match=message) as err:
        model.predict_payload(b'{"inputs": [[1]]}', content_type)
    assert err.value.status_code == 415


def test_model_errors_propagate(model: PyfuncModel, monkeypatch) -> None:
    def boom(data, params=None):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(model.model, "predict", boom)
    with pytest.raises(RuntimeError, match="model exploded"):
        model.predict_payload({"inputs": [[0.0] * 10]})


# -- HTTP routes -----------------------------------------------------------------------------------
def test_invocations_answers_predictions(client: TestClient, frame_model) -> None:
    x = frame_model[2]
    r = client.post("/invocations", json={"dataframe_split": x.to_dict(orient="split")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["predictions"] == pytest.approx(_expected(frame_model))
    assert list(r.json()) == ["predictions"]
    r = client.post("/invocations", content=x.to_csv(index=False), headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == pytest.approx(_expected(frame_model))


def test_invocations_malformed_body_is_400_with_mlflow_body(client: TestClient) -> None:
    r = client.post("/invocations", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert "valid JSON formatted string" in body["message"]
    r = client.post("/invocations", json={"data": [[1]]})
    assert r.status_code == 400
    assert "exactly one of the input fields" in r.json()["message"]


def test_invocations_schema_mismatch_is_400_like_mlflow(client: TestClient, frame_model) -> None:
    x = frame_model[2].drop(columns=["s6"])
    r = client.post("/invocations", json={"dataframe_split": x.to_dict(orient="split")})
    assert r.status_code == 400
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["field"] == "s6"
    assert "s6" in r.json()["message"]


def test_invocations_unsupported_content_type_is_415(client: TestClient) -> None:
    r = client.post("/invocations", content=b"<x/>", headers={"content-type": "application/xml"})
    assert r.status_code == 415
    assert r.json()["error_code"] == "BAD_REQUEST"


def test_invocations_lets_model_errors_reach_the_app(model: PyfuncModel, frame_model) -> None:
    app = Starlette(routes=pyfunc_routes())

    from shipyard.serving.server.limits import ScoringTimeout

    async def call(fn, *args):
        raise ScoringTimeout(1000)

    app.state.servable, app.state.ready, app.state.call = model, True, call
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/invocations", json={"inputs": [[0.0] * 10]}).status_code == 500


def test_invocations_on_an_azureml_servable_is_404() -> None:
    app = Starlette(routes=pyfunc_routes())
    app.state.servable, app.state.ready = object(), True
    r = TestClient(app).post("/invocations", json={"inputs": [[1]]})
    assert r.status_code == 404
    assert "/score" in r.json()["message"]


def test_ping_and_version(client: TestClient) -> None:
    from importlib.metadata import version

    r = client.get("/ping")  # /health is the app's own answer (test_serving_hostile.py)
    assert r.status_code == 200 and r.text == "\n"
    assert client.get("/version").text == version("mlflow")
    client.app.state.ready = False
    try:
        assert client.get("/ping").status_code == 503
    finally:
        client.app.state.ready = True
