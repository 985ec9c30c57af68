"""The Open Inference Protocol (V2) health, metadata and inference routes, in-process on a real bundle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bundles import SEED
from sklearn.linear_model import Ridge
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.testclient import TestClient
from v2_support import INFER, MODEL, EchoServable, assert_error, expected, make_app, tensor

import shipyard
from shipyard.serving.azureml.script import ScoringScript

# ---------------------------------------------------------------- health and metadata


def test_server_live(client: TestClient) -> None:
    response = client.get("/v2/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


def test_server_ready(client: TestClient) -> None:
    response = client.get("/v2/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True}


def test_not_ready_is_503(servable: ScoringScript) -> None:
    client = TestClient(make_app(servable, ready=False))
    response = client.get("/v2/health/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False}
    response = client.get(f"/v2/models/{MODEL}/ready")
    assert response.status_code == 503
    assert response.json() == {"name": MODEL, "ready": False}
    assert client.get("/v2/health/live").status_code == 200


def test_no_servable_yet_is_not_ready() -> None:
    client = TestClient(make_app(None, ready=True))
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200
    assert_error(client.get(f"/v2/models/{MODEL}"), 503, "not loaded")
    assert_error(client.post(INFER, json={"inputs": []}), 503, "not loaded")


def test_server_metadata(client: TestClient) -> None:
    response = client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {"name": "shipyard", "version": shipyard.__version__, "extensions": []}


@pytest.mark.parametrize("path", [f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/3"])
def test_model_metadata(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "name": MODEL,
        "versions": ["3"],
        "platform": "shipyard",
        "inputs": [{"name": "data", "datatype": "FP64", "shape": [-1, 10]}],
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
    }


@pytest.mark.parametrize("path", [f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}/versions/3/ready"])
def test_model_ready(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"name": MODEL, "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "words"),
    [
        ("GET", "/v2/models/other", ["'other'", "not served", MODEL]),
        ("GET", "/v2/models/other/ready", ["'other'", "not served"]),
        ("GET", f"/v2/models/{MODEL}/versions/4", ["version '4'", "'3'"]),
        ("GET", f"/v2/models/{MODEL}/versions/4/ready", ["version '4'"]),
        ("GET", "/v2/models/other/versions/3", ["'other'"]),
        ("POST", "/v2/models/other/infer", ["'other'", "not served"]),
        ("POST", f"/v2/models/{MODEL}/versions/4/infer", ["version '4'"]),
    ],
)
def test_unknown_model_or_version_is_404(
    client: TestClient, method: str, path: str, words: list[str]
) -> None:
    body = {"inputs": [tensor(SEED["data"])]} if method == "POST" else None
    assert_error(client.request(method, path, json=body), 404, *words)


def test_model_without_name_or_version() -> None:
    client = TestClient(make_app(EchoServable(name=None, version=None)))
    metadata = client.get("/v2/models/model").json()
    assert metadata["name"] == "model" and metadata["versions"] == [] and metadata["inputs"] == []
    assert client.get("/v2/models/model/versions/1").status_code == 404
    response = client.post("/v2/models/model/infer", json={"inputs": [tensor([1.5, 2.5])]})
    assert response.status_code == 200
    assert "model_version" not in response.json()  # the protocol: no versioning, no field


# ---------------------------------------------------------------- inference


def test_infer_nested_returns_model_predictions(client: TestClient, model: Ridge) -> None:
    response = client.post(INFER, json={"id": "req-42", "inputs": [tensor(SEED["data"])]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL and body["model_version"] == "3" and body["id"] == "req-42"
    assert len(body["outputs"]) == 1
    output = body["outputs"][0]
    assert output["name"] == "predict" and output["datatype"] == "FP64" and output["shape"] == [2]
    assert output["data"] == pytest.approx(expected(model, SEED["data"]), rel=1e-12)


def test_infer_flat_equals_nested(client: TestClient, model: Ridge) -> None:
    flat = [v for row in SEED["data"] for v in row]
    nested = client.post(INFER, json={"inputs": [tensor(SEED["data"])]}).json()
    response = client.post(INFER, json={"inputs": [tensor(flat, shape=[2, 10])]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == nested["outputs"]
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_versioned_path(client: TestClient, model: Ridge) -> None:
    response = client.post(f"/v2/models/{MODEL}/versions/3/infer", json={"inputs": [tensor(SEED["data"])]})
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_without_id_sends_no_id(client: TestClient) -> None:
    body = client.post(INFER, json={"inputs": [tensor(SEED["data"])]}).json()
    assert "id" not in body


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "INT8", "INT32", "INT64", "UINT8", "UINT16", "UINT64"])
def test_infer_numeric_datatypes_feed_the_fp64_model(client: TestClient, model: Ridge, datatype: str) -> None:
    # The seed values are small integers: exact in every numeric datatype.
    response = client.post(INFER, json={"inputs": [tensor(SEED["data"], datatype=datatype)]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_fp32_values_are_the_float32_values(client: TestClient, model: Ridge) -> None:
    rows = [[0.1 * (i + j) for j in range(10)] for i in range(3)]
    response = client.post(INFER, json={"inputs": [tensor(rows, datatype="FP32")]})
    assert response.status_code == 200
    as_fp32 = np.asarray(rows, dtype=np.float32).astype(float)
    assert response.json()["outputs"][0]["data"] == pytest.approx(model.predict(as_fp32).tolist())


def test_infer_accepts_what_tritonclient_sends(client: TestClient, model: Ridge) -> None:
    """Request and output parameters (binary_data flags) are accepted; the answer is JSON."""
    payload = {
        "id": "7",
        "parameters": {"binary_data_output": False},
        "inputs": [{**tensor(SEED["data"]), "parameters": {"binary_data": False}}],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    response = client.post(INFER, json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_picks_the_input_named_in_the_spec(client: TestClient, model: Ridge) -> None:
    other = tensor(["a", "b"], datatype="BYTES", name="comment")
    response = client.post(INFER, json={"inputs": [other, tensor(SEED["data"])]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_single_input_of_any_name(client: TestClient, model: Ridge) -> None:
    response = client.post(INFER, json={"inputs": [tensor(SEED["data"], name="input-0")]})
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == pytest.approx(expected(model, SEED["data"]))


def test_infer_rows_passed_through_predict_rows(servable: ScoringScript) -> None:
    calls: list[tuple[list[Any], Request]] = []

    async def predict_rows(rows: list[Any], request: Request) -> list[Any]:
        calls.append((rows, request))
        return await run_in_threadpool(servable.predict_rows, rows)

    client = TestClient(make_app(servable, predict_rows=predict_rows))
    flat = [v for row in SEED["data"] for v in row]
    assert client.post(INFER, json={"inputs": [tensor(flat, shape=[2, 10])]}).status_code == 200
    assert len(calls) == 1
    rows, request = calls[0]
    assert rows == [[float(v) for v in row] for row in SEED["data"]]
    assert all(type(v) is float for row in rows for v in row)
    assert isinstance(request, Request)


@pytest.mark.parametrize(
    ("datatype", "data", "out_type", "out_data"),
    [
        ("BOOL", [True, False, True], "BOOL", [True, False, True]),
        ("BYTES", ["a", "héllo", ""], "BYTES", ["a", "héllo", ""]),
        ("INT8", [-128, 0, 127], "INT64", [-128, 0, 127]),
        ("UINT32", [0, 7, 4294967295], "INT64", [0, 7, 4294967295]),
        ("UINT64", [0, 18446744073709551615], "UINT64", [0, 18446744073709551615]),
        ("FP64", [1.5, -2, 1e300], "FP64", [1.5, -2.0, 1e300]),
        ("FP16", [0.5, 65504], "FP64", [0.5, 65504.0]),
    ],
)
def test_infer_scalar_rows_and_output_datatypes(
    datatype: str, data: list[Any], out_type: str, out_data: list[Any]
) -> None:
    echo = EchoServable()
    client = TestClient(make_app(echo))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor(data, [len(data)], datatype)]})
    assert response.status_code == 200, response.text
    assert echo.seen == [out_data if datatype != "FP16" else [0.5, 65504.0]]
    output = response.json()["outputs"][0]
    assert output == {"name": "predict", "datatype": out_type, "shape": [len(data)], "data": out_data}


def test_infer_multi_value_predictions_are_n_by_k() -> None:
    client = TestClient(make_app(EchoServable()))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor([[1, 2, 3], [4, 5, 6]])]})
    output = response.json()["outputs"][0]
    assert output["shape"] == [2, 3] and output["data"] == [1, 2, 3, 4, 5, 6]
