"""The Open Inference Protocol (V2) health, metadata and inference routes, in-process on a real bundle."""

from __future__ import annotations

import json
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
    assert response.json() == {
        "name": "shipyard",
        "version": shipyard.__version__,
        "extensions": ["binary_tensor_data"],
    }


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


@pytest.mark.parametrize(
    ("request_flag", "output_flag", "binary"),
    [
        (None, None, False),
        (False, None, False),
        (True, None, True),
        (True, False, False),
        (False, True, True),
    ],
)
def test_binary_output_when_asked(
    client: TestClient, model: Ridge, request_flag: Any, output_flag: Any, binary: bool
) -> None:
    """An output's own binary_data wins over the request's binary_data_output; JSON otherwise."""
    payload: dict[str, Any] = {
        "id": "7",
        "inputs": [{**tensor(SEED["data"]), "parameters": {"binary_data": False}}],
    }
    if request_flag is not None:
        payload["parameters"] = {"binary_data_output": request_flag}
    if output_flag is not None:
        payload["outputs"] = [{"name": "predict", "parameters": {"binary_data": output_flag}}]
    response = client.post(INFER, json=payload)
    assert response.status_code == 200, response.text
    want = expected(model, SEED["data"])
    if not binary:
        assert "inference-header-content-length" not in response.headers
        assert response.json()["outputs"][0]["data"] == pytest.approx(want)
        return
    length = int(response.headers["inference-header-content-length"])
    assert response.headers["content-type"] == "application/octet-stream"
    head = json.loads(response.content[:length])
    assert head["id"] == "7"
    assert head["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [2], "parameters": {"binary_data_size": 16}}
    ]
    assert np.frombuffer(response.content[length:], dtype="<f8").tolist() == pytest.approx(want)


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
        ("INT8", [-128, 0, 127], "INT8", [-128, 0, 127]),
        ("UINT32", [0, 7, 4294967295], "UINT32", [0, 7, 4294967295]),
        ("UINT64", [0, 18446744073709551615], "UINT64", [0, 18446744073709551615]),
        ("FP64", [1.5, -2, 1e300], "FP64", [1.5, -2.0, 1e300]),
        ("FP16", [0.5, 65504], "FP32", [0.5, 65504.0]),
        ("INT64", [1, 2], "FP32", [1.0, 2.0]),
    ],
)
def test_infer_answers_in_the_declared_output_datatype(
    datatype: str, data: list[Any], out_type: str, out_data: list[Any]
) -> None:
    echo = EchoServable(output={"datatype": out_type, "shape": [-1]})
    client = TestClient(make_app(echo))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor(data, [len(data)], datatype)]})
    assert response.status_code == 200, response.text
    assert echo.seen == [out_data if datatype != "FP16" else [0.5, 65504.0]]
    output = response.json()["outputs"][0]
    assert output == {"name": "predict", "datatype": out_type, "shape": [len(data)], "data": out_data}
    metadata = client.get("/v2/models/echo").json()["outputs"]
    assert metadata == [{"name": "predict", "datatype": out_type, "shape": [-1]}]


@pytest.mark.parametrize(
    ("datatype", "data", "out_type", "out_data"),
    [
        ("INT8", [-128, 0, 127], "FP64", [-128.0, 0.0, 127.0]),
        ("BOOL", [True, False], "FP64", [1.0, 0.0]),
        ("FP16", [0.5, 65504], "FP64", [0.5, 65504.0]),
        ("BYTES", ["a", "b"], "BYTES", ["a", "b"]),  # no FP64 carries text: the one exception
    ],
)
def test_infer_without_a_declared_output_answers_fp64_as_the_metadata_says(
    datatype: str, data: list[Any], out_type: str, out_data: list[Any]
) -> None:
    client = TestClient(make_app(EchoServable()))
    assert client.get("/v2/models/echo").json()["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [-1]}
    ]
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor(data, [len(data)], datatype)]})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0] == {
        "name": "predict",
        "datatype": out_type,
        "shape": [len(data)],
        "data": out_data,
    }


@pytest.mark.parametrize(
    ("output", "predictions", "words"),
    [
        ({"datatype": "INT64", "shape": [-1]}, [1.5, 2.0], "not whole numbers"),
        ({"datatype": "FP64", "shape": [-1]}, ["a", "b"], "BYTES cannot be sent as the model's FP64"),
        ({"datatype": "FP64", "shape": [-1]}, [[1.0, 2.0], [3.0, 4.0]], "declared [-1]"),
        ({"datatype": "UINT8", "shape": [-1]}, [1, 300], "out of range for the model's UINT8"),
    ],
)
def test_predictions_that_break_the_declared_output_are_500(
    output: dict[str, Any], predictions: list[Any], words: str
) -> None:
    class Fixed(EchoServable):
        def predict_rows(self, rows: list[Any]) -> list[Any]:
            return predictions

    client = TestClient(make_app(Fixed(output=output)))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor([1.0, 2.0])]})
    assert_error(response, 500, "cannot be returned", words)


def test_infer_multi_value_predictions_are_n_by_k() -> None:
    client = TestClient(make_app(EchoServable()))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor([[1, 2, 3], [4, 5, 6]])]})
    output = response.json()["outputs"][0]
    assert output["shape"] == [2, 3] and output["data"] == [1, 2, 3, 4, 5, 6]
