"""The Open Inference Protocol (V2) routes and tensor decoding, in-process on a real bundle."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundles import SEED, make_bundle
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.testclient import TestClient

import shipyard
from shipyard.serving.limits import Overloaded, ScoringTimeout
from shipyard.serving.scoring import ScoringScript
from shipyard.serving.servable import PredictionShapeError
from shipyard.serving.tensors import TensorError, check_compatible, decode_tensor, encode_output
from shipyard.serving.v2 import v2_routes
from shipyard.serving.validation import ScoringInputError

MODEL = "diabetes-ridge"
INFER = f"/v2/models/{MODEL}/infer"


def make_app(servable: Any, ready: bool = True, predict_rows: Any = None) -> Starlette:
    """The V2 routes on their own, wired the way the serving app wires them."""
    app = Starlette(routes=v2_routes())
    app.state.servable = servable
    app.state.ready = ready

    async def default_predict_rows(rows: list[Any], request: Request) -> list[Any]:
        return await run_in_threadpool(servable.predict_rows, rows)

    app.state.predict_rows = predict_rows or default_predict_rows
    return app


class EchoServable:
    """Predicts each row itself: shows what rows the decoded tensor became."""

    def __init__(self, name: str | None = "echo", version: str | None = "1", spec: Any = None) -> None:
        self.model_name = name
        self.model_version = version
        self.spec = spec
        self.seen: list[Any] = []

    def input_spec(self) -> dict[str, Any] | None:
        return self.spec

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        self.seen.append(rows)
        return rows


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Ridge]:
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def servable(bundle: tuple[Path, Ridge]) -> ScoringScript:
    return ScoringScript.load(bundle[0])


@pytest.fixture
def model(bundle: tuple[Path, Ridge]) -> Ridge:
    return bundle[1]


@pytest.fixture
def client(servable: ScoringScript) -> Iterator[TestClient]:
    with TestClient(make_app(servable)) as test_client:
        yield test_client


def tensor(data: Any, shape: list[int] | None = None, datatype: str = "FP64", name: str = "data") -> dict:
    if shape is None:
        shape = list(np.asarray(data).shape)
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def expected(model: Ridge, rows: Any) -> list[float]:
    return model.predict(np.asarray(rows, dtype=float)).tolist()


def assert_error(response: Any, status: int, *words: str) -> str:
    """The V2 error body: exactly {"error": "<message>"}; the message contains every word."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], body["error"]
    return body["error"]


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


# ---------------------------------------------------------------- bad requests


def test_wrong_element_count_flat(client: TestClient) -> None:
    payload = {"inputs": [tensor(list(range(19)), shape=[2, 10])]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "19 elements", "[2, 10]", "20")


def test_wrong_element_count_nested(client: TestClient) -> None:
    rows = [SEED["data"][0], SEED["data"][1][:9]]
    payload = {"inputs": [tensor(rows, shape=[2, 10])]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "data[1]", "9 elements", "10")


def test_nested_rows_count_must_match_shape(client: TestClient) -> None:
    payload = {"inputs": [tensor(SEED["data"], shape=[3, 10])]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "2 elements", "3")


def test_wrong_value_type(client: TestClient) -> None:
    rows = [list(SEED["data"][0]), list(SEED["data"][1])]
    rows[1][3] = "4"
    message = assert_error(client.post(INFER, json={"inputs": [tensor(rows)]}), 400, "input 'data'")
    assert "data[1][3]" in message and "a number" in message and "'4'" in message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ["not valid JSON"]),
        (b"", ["empty"]),
        (b"[1, 2]", ["JSON object"]),
        (b'{"inputs": []}', ["'inputs'", "non-empty"]),
        (b'{"inputs": {"name": "data"}}', ["'inputs'"]),
        (b'{"id": 42, "inputs": []}', ["'id'", "string"]),
        (b'{"parameters": [], "inputs": [{}]}', ["'parameters'"]),
        (b'{"inputs": [7]}', ["inputs[0]", "object"]),
        (b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}', ["inputs[0]", "'name'"]),
        (b'{"inputs": [{"name": "data", "shape": [1], "datatype": "FP64"}]}', ["'data' is missing"]),
    ],
)
def test_malformed_requests_are_400(client: TestClient, body: bytes, words: list[str]) -> None:
    response = client.post(INFER, content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, *words)


def test_unknown_requested_output_is_400(client: TestClient) -> None:
    payload = {"inputs": [tensor(SEED["data"])], "outputs": [{"name": "proba"}]}
    assert_error(client.post(INFER, json=payload), 400, "'proba'", "'predict'")


def test_binary_tensor_data_is_400(client: TestClient) -> None:
    body = b'{"inputs": []}' + b"\x00" * 16
    response = client.post(INFER, content=body, headers={"Inference-Header-Content-Length": "14"})
    assert_error(response, 400, "binary", "not supported")
    payload = {"inputs": [{**tensor(SEED["data"]), "parameters": {"binary_data_size": 160}}]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "binary")


def test_compressed_body_is_400(client: TestClient) -> None:
    response = client.post(INFER, content=b"\x1f\x8b", headers={"content-encoding": "gzip"})
    assert_error(response, 400, "gzip")


def test_shape_not_the_models_is_400(client: TestClient) -> None:
    rows = [row[:9] for row in SEED["data"]]
    assert_error(client.post(INFER, json={"inputs": [tensor(rows)]}), 400, "[2, 9]", "[-1, 10]")
    assert_error(client.post(INFER, json={"inputs": [tensor(SEED["data"][0])]}), 400, "[10]", "[-1, 10]")


def test_datatype_not_for_the_model_is_400(client: TestClient) -> None:
    payload = {"inputs": [tensor([["x"] * 10], datatype="BYTES")]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "BYTES", "FP64")


def test_no_rows_is_400(client: TestClient) -> None:
    assert_error(client.post(INFER, json={"inputs": [tensor([], shape=[0, 10])]}), 400, "no rows")


def test_several_inputs_none_named_like_the_model_is_400(client: TestClient) -> None:
    payload = {"inputs": [tensor(SEED["data"], name="a"), tensor(SEED["data"], name="b")]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "'a', 'b'")


def test_duplicate_input_names_are_400(client: TestClient) -> None:
    payload = {"inputs": [tensor(SEED["data"]), tensor(SEED["data"])]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "more than once")


def test_every_input_is_validated(client: TestClient) -> None:
    payload = {"inputs": [tensor(SEED["data"]), tensor([1.5], shape=[1], datatype="INT64", name="extra")]}
    assert_error(client.post(INFER, json=payload), 400, "input 'extra'", "integer")


# ---------------------------------------------------------------- model failures


FAILING_RUN_PY = """\
def init():
    pass
def run(raw_data):
    raise RuntimeError("the model exploded")
"""

SHORT_RUN_PY = """\
def init():
    pass
def run(raw_data):
    return {"result": [1.0]}
"""


def test_model_failure_is_500(tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path / "b", score_py=FAILING_RUN_PY)
    client = TestClient(make_app(ScoringScript.load(bundle)))
    response = client.post(INFER, json={"inputs": [tensor(SEED["data"])]})
    assert_error(response, 500, "RuntimeError", "the model exploded")


def test_wrong_prediction_count_is_500(tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path / "b", score_py=SHORT_RUN_PY)
    client = TestClient(make_app(ScoringScript.load(bundle)))
    assert_error(client.post(INFER, json={"inputs": [tensor(SEED["data"])]}), 500, "1 predictions for 2 rows")


def test_prediction_shape_error_from_the_app_is_500(servable: ScoringScript) -> None:
    async def predict_rows(rows: list[Any], request: Request) -> list[Any]:
        raise PredictionShapeError("the model returned 3 predictions for 2 rows")

    client = TestClient(make_app(servable, predict_rows=predict_rows))
    assert_error(client.post(INFER, json={"inputs": [tensor(SEED["data"])]}), 500, "3 predictions")


def test_input_error_from_the_servable_keeps_its_status(servable: ScoringScript) -> None:
    async def predict_rows(rows: list[Any], request: Request) -> list[Any]:
        raise ScoringInputError("data[0]: expected 10 numbers")

    client = TestClient(make_app(servable, predict_rows=predict_rows))
    assert_error(client.post(INFER, json={"inputs": [tensor(SEED["data"])]}), 422, "expected 10 numbers")


def test_unencodable_predictions_are_500() -> None:
    class NoneServable(EchoServable):
        def predict_rows(self, rows: list[Any]) -> list[Any]:
            return [None] * len(rows)

    client = TestClient(make_app(NoneServable()))
    response = client.post("/v2/models/echo/infer", json={"inputs": [tensor([1.0, 2.0])]})
    assert_error(response, 500, "cannot be returned")


class Unavailable(Exception):
    status_code = 503


@pytest.mark.parametrize(
    "error",
    [Overloaded(50.0), ScoringTimeout(1000.0), TimeoutError("too slow"), Unavailable("queue full")],
)
def test_app_errors_propagate(servable: ScoringScript, error: Exception) -> None:
    """Timeouts and overload belong to the app's middleware, not to this module."""

    async def predict_rows(rows: list[Any], request: Request) -> list[Any]:
        raise error

    client = TestClient(make_app(servable, predict_rows=predict_rows))
    with pytest.raises(type(error)):
        client.post(INFER, json={"inputs": [tensor(SEED["data"])]})


# ---------------------------------------------------------------- tensor decoding


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-(2**15), 2**15 - 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [0.5, -65504], np.float16),
        ("FP32", [0.25, 3], np.float32),
        ("FP64", [0.1, 10**20], np.float64),
        ("BYTES", ["a", "b c"], np.object_),
    ],
)
def test_decode_each_datatype(datatype: str, data: list[Any], dtype: Any) -> None:
    decoded = decode_tensor(tensor(data, [2], datatype, "x"))
    assert decoded.name == "x" and decoded.datatype == datatype and decoded.shape == (2,)
    assert decoded.array.dtype == np.dtype(dtype)
    assert decoded.rows() == [dtype(v).item() if datatype != "BYTES" else v for v in data]


@pytest.mark.parametrize("datatype", ["BOOL", "INT16", "FP32", "BYTES"])
def test_decode_flat_and_nested_agree(datatype: str) -> None:
    values = {"BOOL": [True, False], "INT16": [3, -4], "FP32": [0.5, 1.5], "BYTES": ["p", "q"]}[datatype]
    flat = [values[(i + j) % 2] for i in range(2) for j in range(3)]
    nested = [flat[0:3], flat[3:6]]
    a = decode_tensor(tensor(flat, [2, 3], datatype))
    b = decode_tensor(tensor(nested, [2, 3], datatype))
    assert a.array.shape == b.array.shape == (2, 3)
    assert a.rows() == b.rows() == nested


def test_decode_three_dimensions() -> None:
    nested = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    assert decode_tensor(tensor(nested, [2, 2, 2], "INT32")).rows() == nested
    assert decode_tensor(tensor(list(range(1, 9)), [2, 2, 2], "INT32")).rows() == nested


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("UINT8", 256),
        ("UINT8", -1),
        ("UINT16", 65536),
        ("UINT32", 2**32),
        ("UINT64", -1),
        ("INT8", 128),
        ("INT8", -129),
        ("INT16", 2**15),
        ("INT32", -(2**31) - 1),
        ("INT64", 2**63),
    ],
)
def test_decode_integer_out_of_range(datatype: str, value: int) -> None:
    with pytest.raises(TensorError, match=rf"input 'x': data\[1\] = {value} is out of range for {datatype}"):
        decode_tensor(tensor([0, value], [2], datatype, "x"))


@pytest.mark.parametrize(("datatype", "value"), [("FP16", 70000.0), ("FP32", 1e39), ("FP32", -1e39)])
def test_decode_float_out_of_range(datatype: str, value: float) -> None:
    with pytest.raises(TensorError, match=rf"data\[0\]\[1\] = .* is out of range for {datatype}"):
        decode_tensor(tensor([[1.0, value]], [1, 2], datatype, "x"))


@pytest.mark.parametrize(
    ("datatype", "value", "words"),
    [
        ("FP64", "1.5", "must be a number for FP64, got '1.5'"),
        ("FP64", True, "must be a number for FP64, got true"),
        ("FP32", None, "got null"),
        ("FP64", [1.0], "got an array"),
        ("INT32", 1.5, "must be an integer for INT32, got 1.5"),
        ("INT64", False, "must be an integer for INT64, got false"),
        ("UINT8", "7", "must be an integer"),
        ("BOOL", 1, "must be true or false for BOOL, got 1"),
        ("BOOL", "true", "must be true or false"),
        ("BYTES", 3, "must be a string for BYTES, got 3"),
        ("BYTES", {"a": 1}, "got an object"),
    ],
)
def test_decode_wrong_value_type(datatype: str, value: Any, words: str) -> None:
    good = {"BOOL": True, "BYTES": "s"}.get(datatype, 1)
    with pytest.raises(TensorError) as info:
        decode_tensor(tensor([good, value], [2], datatype, "x"))
    assert str(info.value).startswith("input 'x': data[1] ")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ([], "'shape' must be a non-empty array"),
        ("2", "'shape' must be a non-empty array"),
        ([-1, 2], "integers >= 0"),
        ([2, 1.0], "integers >= 0"),
        ([True], "integers >= 0"),
    ],
)
def test_decode_bad_shape(shape: Any, words: str) -> None:
    with pytest.raises(TensorError, match="input 'x'") as info:
        decode_tensor({"name": "x", "shape": shape, "datatype": "FP64", "data": [1.0, 2.0]})
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("data", "shape", "words"),
    [
        ([1, 2, 3], [2, 2], "'data' has 3 elements but shape [2, 2] needs 4"),
        ([1, 2, 3, 4, 5], [4], "'data' has 5 elements but shape [4] needs 4"),
        ([[1, 2], [3]], [2, 2], "data[1] has 1 elements"),
        ([[1, 2], 3], [2, 2], "data[1] must be an array of 2 elements"),
        ([[1, 2, 3, 4]], [2, 2], "data has 1 elements but shape [2, 2] needs 2"),
        ([[[1], [2]], [[3], [4]]], [2, 2], "data[0][0] must be a number for FP64, got an array"),
        ({"a": 1}, [1], "'data' must be an array"),
    ],
)
def test_decode_wrong_element_count_or_nesting(data: Any, shape: list[int], words: str) -> None:
    with pytest.raises(TensorError, match="input 'x'") as info:
        decode_tensor(tensor(data, shape, "FP64", "x"))
    assert words in str(info.value)


@pytest.mark.parametrize(("datatype", "words"), [("FLOAT64", "unknown datatype"), ("BF16", "no JSON form")])
def test_decode_unsupported_datatype(datatype: str, words: str) -> None:
    with pytest.raises(TensorError, match=words):
        decode_tensor(tensor([1.0], [1], datatype, "x"))


def test_decode_rejects_shared_memory() -> None:
    spec = {**tensor([1.0], [1]), "parameters": {"shared_memory_region": "r0"}}
    with pytest.raises(TensorError, match="shared memory"):
        decode_tensor(spec)


def test_zero_size_tensor() -> None:
    assert decode_tensor(tensor([], [0, 10])).array.shape == (0, 10)


def test_check_compatible() -> None:
    spec = {"name": "data", "datatype": "INT64", "shape": [-1, 2]}
    check_compatible(decode_tensor(tensor([[1, 2]], datatype="UINT8")), spec)
    with pytest.raises(TensorError, match="FP32 cannot feed the model's INT64"):
        check_compatible(decode_tensor(tensor([[1, 2]], datatype="FP32")), spec)
    with pytest.raises(TensorError, match=r"shape \[1, 3\] does not match"):
        check_compatible(decode_tensor(tensor([[1, 2, 3]], datatype="INT64")), spec)


def test_encode_output() -> None:
    assert encode_output("p", [1, 2.5]) == {"name": "p", "datatype": "FP64", "shape": [2], "data": [1.0, 2.5]}
    assert encode_output("p", [np.int32(3)])["datatype"] == "INT64"
    with pytest.raises(ValueError, match="do not form a tensor"):
        encode_output("p", [[1, 2], [3]])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3).flatmap(
        lambda shape: st.tuples(
            st.just(shape),
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False, width=64),
                min_size=math.prod(shape),
                max_size=math.prod(shape),
            ),
        )
    )
)
def test_flat_and_nested_data_decode_alike(case: tuple[list[int], list[float]]) -> None:
    shape, flat = case
    nested = np.asarray(flat, dtype=np.float64).reshape(shape).tolist()
    a = decode_tensor(tensor(flat, shape))
    b = decode_tensor(tensor(nested, shape))
    assert a.rows() == b.rows() == nested
    assert a.array.dtype == b.array.dtype == np.float64
    assert np.array_equal(a.array, b.array) and a.array.shape == tuple(shape)
