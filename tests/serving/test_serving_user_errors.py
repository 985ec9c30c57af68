"""Exceptions raised by the user's code (score.py's run(), an MLflow model's predict()), answered
by one rule on every protocol (serving/user_errors.py): a ValueError or OverflowError means the
input was refused, a 4xx with its message; anything else is a 500 with the request id, the
traceback in the server log and never in the body. Real server processes on 127.0.0.1.
"""

from __future__ import annotations

import json

import httpx
import pytest
from bundles import make_bundle, serving

pytestmark = pytest.mark.integration

# The first value of the first row picks what run() does.
SCORE_PY = """\
import json
def init():
    pass
def run(raw_data):
    rows = json.loads(raw_data)["data"]
    if rows[0][0] == -1:
        raise ValueError("'data' must hold ages of 0 or more")
    if rows[0][0] == -2:
        raise OverflowError("age too large for the model")
    if rows[0][0] == -3:
        raise KeyError("a bug in the script")
    return {"result": [float(sum(row)) for row in rows]}
"""

# An MLflow model from code (no pickle): predict() raises as the first value asks.
MODEL_PY = """\
import numpy as np
import mlflow.pyfunc
from mlflow.models import set_model

class Picky(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: np.ndarray, params=None):
        rows = np.asarray(model_input, dtype=float)
        if rows[0][0] == -1:
            raise ValueError("ages must be 0 or more")
        if rows[0][0] == -3:
            raise RuntimeError("a bug in the model")
        if rows[0][0] == -4:
            raise TypeError("another bug in the model")
        return rows.sum(axis=1)

set_model(Picky())
"""

V2_INFER = "/v2/models/diabetes-ridge/infer"


def _rows(first: float) -> list[list[float]]:
    return [[first, *range(1, 10)], list(range(10))]


def _post(url: str, path: str, body: object, request_id: str) -> httpx.Response:
    return httpx.post(
        url + path, json=body, headers={"x-request-id": request_id}, timeout=30, trust_env=False
    )


def _v2(rows: list[list[float]]) -> dict[str, object]:
    return {"inputs": [{"name": "data", "datatype": "FP64", "shape": [len(rows), 10], "data": rows}]}


def _no_traceback(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.fixture(scope="module")
def script_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("user-errors-script")
    bundle, _ = make_bundle(root / "bundle", SCORE_PY)
    with serving(bundle, root, {"auth": False}, "user-errors-script") as proc:
        yield proc, root / "user-errors-script.log"


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory):
    import logging

    import mlflow.pyfunc

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("user-errors-model")
    (root / "picky.py").write_text(MODEL_PY)
    bundle = root / "bundle"
    mlflow.pyfunc.save_model(str(bundle / "model"), python_model=str(root / "picky.py"), pip_requirements=[])
    manifest = {"flavor": "pyfunc", "model_name": "picky", "model_version": "1", "model_dir": "model"}
    (bundle / "manifest.json").write_text(json.dumps(manifest | {"entry_script": None}))
    with serving(bundle, root, {"auth": False}, "user-errors-model") as proc:
        yield proc, root / "user-errors-model.log"


@pytest.mark.parametrize(
    ("first", "message"), [(-1, "'data' must hold ages of 0 or more"), (-2, "age too large for the model")]
)
def test_a_value_error_from_run_is_422_with_its_message(script_server, first: int, message: str) -> None:
    proc, log = script_server
    score = _post(proc.url, "/score", {"data": _rows(first)}, f"score{-first}")
    assert score.status_code == 422, score.text
    assert score.json()["error"] == {
        "code": "invalid_input",
        "message": message,
        "request_id": f"score{-first}",
    }

    infer = _post(proc.url, V2_INFER, _v2(_rows(first)), f"v2-{-first}")
    assert infer.status_code == 422, infer.text
    assert infer.json() == {"error": message}
    # The operator can tell a refused input from a bug: one warning naming where it was raised.
    logged = log.read_text()
    assert f"run() refused the input (request_id=score{-first})" in logged
    assert "score.py:" in logged


def test_any_other_exception_from_run_is_500_with_the_request_id(script_server) -> None:
    proc, log = script_server
    score = _post(proc.url, "/score", {"data": _rows(-3)}, "bug-score")
    assert score.status_code == 500
    error = score.json()["error"]
    assert error["code"] == "scoring_failed" and error["request_id"] == "bug-score"
    assert "KeyError: 'a bug in the script'" in error["message"]
    _no_traceback(score)

    infer = _post(proc.url, V2_INFER, _v2(_rows(-3)), "bug-v2")
    assert infer.status_code == 500
    assert "KeyError" in infer.json()["error"] and "request id bug-v2" in infer.json()["error"]
    _no_traceback(infer)

    logged = log.read_text()
    assert "Traceback" in logged and "bug-score" in logged and "bug-v2" in logged
    ok = _post(proc.url, "/score", {"data": _rows(1)}, "after")
    assert ok.status_code == 200 and ok.json() == {"result": [46.0, 45.0]}


def test_invocations_answers_refused_input_400_and_model_faults_500(model_server) -> None:
    proc, log = model_server
    refused = _post(proc.url, "/invocations", {"inputs": _rows(-1)}, "mlflow-refused")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error_code"] == "BAD_REQUEST"
    assert "ValueError: ages must be 0 or more" in refused.json()["message"]

    for first, kind in ((-3, "RuntimeError: a bug in the model"), (-4, "TypeError: another bug")):
        failed = _post(proc.url, "/invocations", {"inputs": _rows(first)}, f"mlflow{first}")
        assert failed.status_code == 500, failed.text
        body = failed.json()
        assert body["error_code"] == "INTERNAL_ERROR"
        assert kind in body["message"] and f"request id mlflow{first}" in body["message"]
        _no_traceback(failed)
        assert failed.headers["x-request-id"] == f"mlflow{first}"

    score = _post(proc.url, "/score", {"data": _rows(-3)}, "model-score")
    assert score.status_code == 500 and score.json()["error"]["request_id"] == "model-score"
    assert _post(proc.url, "/invocations", {"inputs": _rows(1)}, "ok").json() == {"predictions": [46.0, 45.0]}
    assert "Traceback" in log.read_text()
