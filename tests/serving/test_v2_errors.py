"""The Open Inference Protocol (V2) error answers: bad requests (400) and model failures (500)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundles import SEED, make_bundle
from starlette.requests import Request
from starlette.testclient import TestClient
from v2_support import INFER, EchoServable, assert_error, make_app, tensor

from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.bounds import ParseBounds
from shipyard.serving.servable import PredictionShapeError
from shipyard.serving.server.limits import Overloaded, ScoringTimeout
from shipyard.serving.validation import ScoringInputError

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


def _binary_request(inputs: list[dict], data: bytes, header_length: str | None = None) -> dict:
    head = json.dumps({"inputs": inputs}).encode()
    length = header_length if header_length is not None else str(len(head))
    return {"content": head + data, "headers": {"Inference-Header-Content-Length": length}}


BINARY = {"name": "data", "shape": [2, 10], "datatype": "FP64", "parameters": {"binary_data_size": 160}}
ROWS = np.asarray(SEED["data"], dtype="<f8").tobytes()


def _one(datatype: str, shape: list[int], size: int) -> dict:
    return {**BINARY, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


@pytest.mark.parametrize(
    ("request_kwargs", "words"),
    [
        (_binary_request([BINARY], ROWS, "x"), ["Inference-Header-Content-Length must be a number"]),
        (_binary_request([BINARY], ROWS, "100000"), ["is 100000 but the body has"]),
        (_binary_request([BINARY], ROWS[:-8]), ["runs past the end of the body"]),
        (_binary_request([BINARY], ROWS + b"\0"), ["1 bytes of binary data that no input"]),
        (
            _binary_request([{**BINARY, "shape": [2, 9]}], ROWS),
            ["binary_data_size is 160 bytes", "needs 144"],
        ),
        (_binary_request([{**BINARY, "parameters": {"binary_data_size": -1}}], b""), ["integer >= 0"]),
        (_binary_request([_one("BOOL", [2], 2)], b"\x01\x02"), ["element 1 is 2"]),
        (_binary_request([_one("BYTES", [1], 6)], b"\x05\0\0\0ab"), ["element 0 claims 5 bytes, 2 are left"]),
        (_binary_request([_one("BYTES", [1], 6)], b"\x02\0\0\0\xff\xfe"), ["not UTF-8"]),
        (_binary_request([_one("BYTES", [2], 5)], b"\x01\0\0\0a"), ["holds 1 elements, its shape needs 2"]),
        (_binary_request([BINARY], np.full(20, np.nan).tobytes()), ["element 0 is nan", "finite"]),
    ],
)
def test_bad_binary_tensor_data_is_400(client: TestClient, request_kwargs: dict, words: list[str]) -> None:
    assert_error(client.post(INFER, **request_kwargs), 400, *words)


def test_binary_data_size_without_binary_data_is_400(client: TestClient) -> None:
    payload = {"inputs": [{**tensor(SEED["data"]), "parameters": {"binary_data_size": 160}}]}
    assert_error(client.post(INFER, json=payload), 400, "input 'data'", "Inference-Header-Content-Length")


def test_shared_memory_is_400(client: TestClient) -> None:
    payload = {"inputs": [{**tensor(SEED["data"]), "parameters": {"shared_memory_region": "r"}}]}
    assert_error(client.post(INFER, json=payload), 400, "shared memory tensors are not supported")


def test_binary_tensors_count_against_max_body_elements(servable: ScoringScript) -> None:
    app = make_app(servable)
    app.state.bounds = ParseBounds(max_elements=100)
    big = np.zeros((20, 10), dtype="<f8")
    spec = {**BINARY, "shape": [20, 10], "parameters": {"binary_data_size": big.nbytes}}
    response = TestClient(app).post(INFER, **_binary_request([spec], big.tobytes()))
    assert_error(response, 413, "200 values", "max_body_elements")


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
