"""The scoring app on a real bundle (tiny sklearn Ridge, the example score.py), in-process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from bundles import SEED, make_bundle
from sklearn.linear_model import Ridge
from starlette.testclient import TestClient

from shipyard.serving.app import create_app
from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.validation import ScoringInputError, parse_signature, validate_payload

FAILING_RUN_PY = """\
import json
calls = 0
def init():
    pass
def run(raw_data):
    global calls
    calls += 1
    if json.loads(raw_data)["data"][0][0] < 0:
        raise RuntimeError("negative input is not supported")
    return {"result": [calls]}
"""

HEADERS_RUN_PY = """\
def init():
    pass
def run(raw_data, headers):
    return '{"result": [1.5], "tenant": "%s"}' % headers.get("x-tenant", "")
"""


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Ridge]:
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def client(bundle: tuple[Path, Ridge]):
    with TestClient(create_app(bundle[0], deployment_id="dep-1")) as test_client:
        yield test_client


def test_score_returns_model_predictions(client: TestClient, bundle: tuple[Path, Ridge]) -> None:
    response = client.post("/score", json=SEED)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    result = response.json()["result"]
    assert len(result) == 2 and all(isinstance(v, float) for v in result)
    expected = bundle[1].predict(np.array(SEED["data"], dtype=float))
    assert result == pytest.approx(expected.tolist())


def test_health_reports_model_and_deployment(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "healthy",
        "model_name": "diabetes-ridge",
        "model_version": "3",
        "deployment_id": "dep-1",
    }


def test_bad_json_is_400_json_error(client: TestClient) -> None:
    response = client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


def test_wrong_width_is_422_naming_the_row(client: TestClient) -> None:
    response = client.post("/score", json={"data": [[1, 2, 3]]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "data[0]"
    assert error["message"] == "data[0]: expected 10 numbers, got 3"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "body: expected a JSON object, got array"),
        ({"rows": []}, "data: required field is missing"),
        ({"data": "x"}, "data: expected a list of rows, got string"),
        ({"data": []}, "data: expected at least one row, got an empty list"),
        ({"data": [list(range(10)), list(range(9))]}, "data[1]: expected 10 numbers, got 9"),
        ({"data": [[1] * 9 + ["a"]]}, 'data[0][9]: expected a number, got "a"'),
        ({"data": [[True] * 10]}, "data[0][0]: expected a number, got true"),
    ],
)
def test_validation_messages(payload: object, message: str) -> None:
    checks = parse_signature({"inputs": {"data": {"type": "array", "shape": [-1, 10], "dtype": "float"}}})
    with pytest.raises(ScoringInputError) as info:
        validate_payload(payload, checks)
    assert str(info.value) == message


def test_run_exception_is_500_and_server_keeps_answering(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = make_bundle(tmp_path / "failing", FAILING_RUN_PY)
    with TestClient(create_app(root)) as client:
        caplog.set_level(logging.INFO, logger="shipyard.serving")
        failed = client.post("/score", json={"data": [[-1] * 10]}, headers={"x-request-id": "req-42"})
        assert failed.status_code == 500
        error = failed.json()["error"]
        assert error["code"] == "scoring_failed"
        assert error["request_id"] == "req-42"
        assert "negative input is not supported" in error["message"]
        assert any("req-42" in r.getMessage() and r.exc_info for r in caplog.records)

        again = client.post("/score", json={"data": [[1] * 10]})
        assert again.status_code == 200
        assert again.json() == {"result": [2]}


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.post("/score", json=SEED).headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    # A header that is not a plain token is replaced, not echoed into logs and headers.
    assert client.get("/", headers={"x-request-id": "a b\tc"}).headers["x-request-id"] != "a b\tc"


def test_access_log_is_one_json_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shipyard.serving.access")
    client.post("/score", json=SEED, headers={"x-request-id": "log-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shipyard.serving.access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "POST",
        "/score",
        200,
        "log-1",
    )
    assert line["duration_ms"] >= 0


def test_get_score_is_405_json(client: TestClient) -> None:
    response = client.get("/score")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]
    assert client.get("/nope").json()["error"]["code"] == "not_found"


def test_run_with_headers_and_json_string_result(tmp_path: Path) -> None:
    root, _ = make_bundle(tmp_path / "headers", HEADERS_RUN_PY)
    with TestClient(create_app(root)) as client:
        response = client.post("/score", json={"data": [[0] * 10]}, headers={"x-tenant": "acme"})
    assert response.status_code == 200
    assert response.json() == {"result": [1.5], "tenant": "acme"}


def test_load_sets_model_dir_and_scores_directly(bundle: tuple[Path, Ridge]) -> None:
    script = ScoringScript.load(bundle[0])
    assert script.model_name == "diabetes-ridge" and script.model_version == "3"
    assert not script.run_takes_headers
    result = script.score(json.dumps(SEED))
    assert result["result"] == pytest.approx(bundle[1].predict(np.array(SEED["data"], dtype=float)).tolist())


def test_init_failure_fails_startup(tmp_path: Path) -> None:
    root, _ = make_bundle(
        tmp_path / "broken", "def init():\n    raise ValueError('no model')\ndef run(r):\n    pass\n"
    )
    with pytest.raises(ValueError, match="no model"), TestClient(create_app(root)):
        pass
