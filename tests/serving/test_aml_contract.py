"""Azure ML's score.py contract with inference-schema decorators, the real package, in-process.

The scripts here are what Azure ML users write: ``@input_schema(...)`` / ``@output_schema(...)``
on run(), which the Azure ML server calls with the body's keys as keyword arguments (converted by
the decorators) and ``request_headers`` when run() asks for it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from bundles import SCORE_PY, SEED, make_bundle
from sklearn.linear_model import Ridge
from starlette.concurrency import run_in_threadpool
from starlette.testclient import TestClient

from shipyard.serving import printlog
from shipyard.serving.app import create_app
from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.azureml.swagger import SwaggerVersionError, build_swagger
from shipyard.serving.validation import ScoringInputError

pytest.importorskip("inference_schema")

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

_PRELUDE = """\
import os
from pathlib import Path
import joblib
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
model = None

def init():
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")

"""

NUMPY_PY = (
    _PRELUDE
    + """
@input_schema("data", NumpyParameterType(np.array([[0.1] * 10])))
@output_schema(StandardPythonParameterType({"result": [150.0], "input_type": "ndarray"}))
def run(data):
    if (data < 0).any():
        raise ValueError("negative features are not supported")
    print("scoring", len(data), "rows")
    return {"result": model.predict(data).tolist(), "input_type": type(data).__name__}
"""
)

PANDAS_PY = (
    _PRELUDE
    + """
@input_schema("data", PandasParameterType(pd.DataFrame({c: [0.1] for c in COLUMNS})))
@output_schema(NumpyParameterType(np.array([150.0])))
def run(data):
    assert isinstance(data, pd.DataFrame), type(data)
    return model.predict(data[COLUMNS].to_numpy()).tolist()
"""
)

STANDARD_PY = (
    _PRELUDE
    + """
@input_schema("data", StandardPythonParameterType([[0.1] * 10]))
@input_schema("scale", StandardPythonParameterType(1.0))
@output_schema(StandardPythonParameterType([150.0]))
def run(data, scale=2.0):
    assert isinstance(data, list)
    return (model.predict(np.asarray(data, dtype=float)) * scale).tolist()
"""
)

NESTED_PY = (
    _PRELUDE
    + """
@input_schema("Inputs", StandardPythonParameterType({"data": NumpyParameterType(np.array([[0.1] * 10]))}))
@output_schema(StandardPythonParameterType({"Results": [150.0]}))
def run(Inputs):
    return {"Results": model.predict(Inputs["data"]).tolist()}
"""
)

HEADERS_PY = (
    _PRELUDE
    + """
@input_schema("data", NumpyParameterType(np.array([[0.1] * 10])))
def run(data, request_headers):
    return {
        "rows": len(data),
        "request_id": request_headers.get("x-request-id"),
        "tenant": request_headers.get("x-tenant"),
        "Tenant": request_headers["X-Tenant"],  # Azure ML (Flask) spells header names this way
    }
"""
)

UNDECORATED_HEADERS_PY = """\
import json
def init():
    pass
def run(raw_data, *, request_headers):
    return {"rows": len(json.loads(raw_data)["data"]), "tenant": request_headers.get("x-tenant")}
"""


def _bundle(root: Path, score_py: str, signature: bool = False) -> tuple[Path, Ridge]:
    """A bundle as packaging builds it; without the manifest signature unless asked, so that the
    decorators alone judge the input."""
    path, model = make_bundle(root, score_py)
    manifest = json.loads((path / "manifest.json").read_text())
    if not signature:
        manifest["signature"] = {}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path, model


def _expected(model: Ridge) -> list[float]:
    return model.predict(np.array(SEED["data"], dtype=float)).tolist()


@pytest.fixture
def numpy_bundle(tmp_path: Path) -> tuple[Path, Ridge]:
    return _bundle(tmp_path / "numpy", NUMPY_PY)


def test_numpy_schema_gets_an_array_and_scores_the_seed(numpy_bundle: tuple[Path, Ridge]) -> None:
    with TestClient(create_app(numpy_bundle[0])) as client:
        response = client.post("/score", json=SEED)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["input_type"] == "ndarray"
    assert body["result"] == pytest.approx(_expected(numpy_bundle[1]))


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"data": [[1, 2, 3]]}, "data", "size 3 on dimension #1"),
        ({"data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}, "data", "2 dimensions"),
        ({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, "x"]]}, "data", "could not convert"),
        ({"data": "rows"}, "data", "expected an array"),
        ({"rows": SEED["data"]}, "data", "required field is missing"),
        ([[1] * 10], "body", "expected a JSON object"),
    ],
)
def test_input_the_decorator_rejects_is_422_naming_the_field(
    numpy_bundle: tuple[Path, Ridge], payload: object, field: str, words: str
) -> None:
    with TestClient(create_app(numpy_bundle[0])) as client:
        response = client.post("/score", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ") and words in error["message"]


def test_a_value_error_raised_by_run_itself_is_422_without_a_field(numpy_bundle: tuple[Path, Ridge]) -> None:
    # run() refused the converted values (serving/user_errors.py): the caller's input, no field.
    with TestClient(create_app(numpy_bundle[0])) as client:
        response = client.post("/score", json={"data": [[-1] * 10]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"] == "negative features are not supported" and "field" not in error


def test_manifest_signature_still_applies_to_decorated_scripts(tmp_path: Path) -> None:
    bundle, _ = _bundle(tmp_path / "b", NUMPY_PY, signature=True)
    script = ScoringScript.load(bundle)
    with pytest.raises(ScoringInputError) as info:
        script.validate(json.dumps({"data": [[1, 2]]}))
    assert info.value.field == "data[0]"


def test_pandas_schema_gets_a_dataframe_with_the_column_names(tmp_path: Path) -> None:
    bundle, model = _bundle(tmp_path / "pandas", PANDAS_PY)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in SEED["data"]]
    with TestClient(create_app(bundle)) as client:
        ok = client.post("/score", json={"data": records})
        bad = client.post("/score", json={"data": [{**records[0], "bmi": "heavy"}]})
        narrow = client.post("/score", json={"data": [{c: 1.0 for c in COLUMNS[:9]}]})
    assert ok.status_code == 200, ok.text
    assert ok.json() == pytest.approx(_expected(model))
    for response in (bad, narrow):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "data"


def test_standard_python_schema_checks_types_and_fills_defaults(tmp_path: Path) -> None:
    bundle, model = _bundle(tmp_path / "std", STANDARD_PY)
    expected = np.array(_expected(model))
    with TestClient(create_app(bundle)) as client:
        default = client.post("/score", json=SEED)
        scaled = client.post("/score", json={**SEED, "scale": 3})  # an int is fine for a float sample
        wrong = client.post("/score", json={**SEED, "scale": "big"})
    assert default.json() == pytest.approx((expected * 2.0).tolist())  # run()'s own default
    assert scaled.json() == pytest.approx((expected * 3).tolist())
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "scale"


def test_nested_schema_names_the_inner_field(tmp_path: Path) -> None:
    bundle, model = _bundle(tmp_path / "nested", NESTED_PY)
    with TestClient(create_app(bundle)) as client:
        ok = client.post("/score", json={"Inputs": SEED})
        bad = client.post("/score", json={"Inputs": {"data": [[1, 2]]}})
    assert ok.json()["Results"] == pytest.approx(_expected(model))
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "Inputs.data"


def test_request_headers_reach_a_run_that_asks_for_them(tmp_path: Path) -> None:
    bundle, _ = _bundle(tmp_path / "headers", HEADERS_PY)
    with TestClient(create_app(bundle)) as client:
        given = client.post("/score", json=SEED, headers={"x-request-id": "req-42", "x-tenant": "blue"})
        made = client.post("/score", json=SEED, headers={"X-Tenant": "green"})
    assert given.json() == {"rows": 2, "request_id": "req-42", "tenant": "blue", "Tenant": "blue"}
    assert made.json()["request_id"] == made.headers["x-request-id"]  # the id the server made


def test_undecorated_run_gets_request_headers_as_a_keyword(tmp_path: Path) -> None:
    bundle, _ = _bundle(tmp_path / "kw", UNDECORATED_HEADERS_PY)
    script = ScoringScript.load(bundle)
    assert not script.schema_decorated
    assert script.run(json.dumps(SEED), {"x-tenant": "red"}) == {"rows": 2, "tenant": "red"}


def test_predict_rows_and_input_spec_of_a_decorated_script(numpy_bundle: tuple[Path, Ridge]) -> None:
    script = ScoringScript.load(numpy_bundle[0])
    assert script.schema_decorated and script.input_name == "data"
    assert script.predict_rows(SEED["data"]) == pytest.approx(_expected(numpy_bundle[1]))
    assert script.input_spec() == {"name": "data", "datatype": "FP64", "shape": [-1, -1]}
    with pytest.raises(ScoringInputError) as info:
        script.predict_rows([[1, 2, 3]])
    assert info.value.field == "data"


@pytest.mark.parametrize(
    ("score_py", "output"),
    [
        (NUMPY_PY, {"datatype": "FP64", "shape": [-1]}),  # {"result": [150.0]}: the result list
        (PANDAS_PY, {"datatype": "FP64", "shape": [-1]}),  # a numpy array of doubles
        (NESTED_PY, None),  # {"Results": ...}: not what V2 reads
        (SCORE_PY, None),  # no decorators
    ],
)
def test_output_spec_comes_from_the_output_schema(tmp_path: Path, score_py: str, output: Any) -> None:
    bundle, _ = make_bundle(tmp_path / "b", score_py)
    assert ScoringScript.load(bundle).output_spec() == output


def test_the_same_script_loads_twice_in_one_process(numpy_bundle: tuple[Path, Ridge]) -> None:
    # inference-schema refuses a second output schema for the same "<module>.run".
    first = ScoringScript.load(numpy_bundle[0])
    second = ScoringScript.load(numpy_bundle[0])
    assert first.predict_rows(SEED["data"]) == pytest.approx(second.predict_rows(SEED["data"]))


def test_swagger_from_the_decorators(numpy_bundle: tuple[Path, Ridge]) -> None:
    script = ScoringScript.load(numpy_bundle[0])
    doc = build_swagger(script)
    assert doc["swagger"] == "2.0"
    assert "post" in doc["paths"]["/score"]
    service_input = doc["definitions"]["ServiceInput"]
    assert service_input["example"] == {"data": [[0.1] * 10]}
    assert service_input["properties"]["data"]["format"] == "numpy.ndarray"
    assert doc["definitions"]["ServiceOutput"]["example"] == {"result": [150.0], "input_type": "ndarray"}
    assert build_swagger(script) is doc  # cached per script

    v3 = build_swagger(script, "3")
    assert v3["openapi"].startswith("3.0")
    assert v3["components"]["schemas"]["ServiceInput"]["example"] == {"data": [[0.1] * 10]}
    assert build_swagger(script, "3.1")["openapi"] == "3.1.0"
    with pytest.raises(SwaggerVersionError):
        build_swagger(script, "4")


def test_swagger_without_decorators_uses_the_manifest_sample(tmp_path: Path) -> None:
    bundle, _ = make_bundle(tmp_path / "plain")
    doc = build_swagger(ScoringScript.load(bundle))
    assert doc["definitions"]["ServiceInput"] == {"type": "object", "example": SEED}
    assert "/score" in doc["paths"]


def test_swagger_route(numpy_bundle: tuple[Path, Ridge]) -> None:
    with TestClient(create_app(numpy_bundle[0])) as client:
        response = client.get("/swagger.json")
    assert response.status_code == 200
    assert response.json()["definitions"]["ServiceInput"]["example"] == {"data": [[0.1] * 10]}


def _install(monkeypatch: pytest.MonkeyPatch) -> printlog.RequestPrintWriter:
    # In the test body, not a fixture: pytest swaps sys.stdout between setup and call.
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # put back whatever stdout was at teardown
    return printlog.install()


def _print_records(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == printlog.USER_LOGGER]


def test_print_in_run_is_logged_with_the_request_id(
    numpy_bundle: tuple[Path, Ridge], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch)  # the app's startup installs it too (idempotent)
    caplog.set_level(logging.INFO, logger=printlog.USER_LOGGER)
    with TestClient(create_app(numpy_bundle[0])) as client:
        response = client.post("/score", json=SEED, headers={"x-request-id": "req-print-1"})
    assert response.status_code == 200
    assert {"event": "print", "request_id": "req-print-1", "message": "scoring 2 rows"} in _print_records(
        caplog
    )


def test_run_in_threadpool_carries_the_request_id(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _install(monkeypatch)
    caplog.set_level(logging.INFO, logger=printlog.USER_LOGGER)

    def scoring() -> None:
        print("one", end="")
        print(" line")
        print("unfinished", end="")

    async def request(request_id: str) -> None:
        token = printlog.REQUEST_ID.set(request_id)
        try:
            await run_in_threadpool(scoring)
        finally:
            printlog.REQUEST_ID.reset(token)
        printlog.flush_request(request_id)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "a")
            tg.start_soon(request, "b")

    anyio.run(main)
    records = _print_records(caplog)
    for rid in ("a", "b"):
        mine = [r["message"] for r in records if r["request_id"] == rid]
        assert mine == ["one line", "unfinished"]


def test_print_outside_a_request_goes_to_stdout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    print_router = _install(monkeypatch)
    caplog.set_level(logging.INFO, logger=printlog.USER_LOGGER)
    assert printlog.install() is print_router  # idempotent
    print("server says hi")
    print_router.flush()
    assert _print_records(caplog) == []


def test_print_writer_passes_through_and_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> int:
            lines.append(text)
            return len(text)

        def flush(self) -> None:
            pass

        encoding = "utf-8"

    writer = printlog.RequestPrintWriter(Sink())  # type: ignore[arg-type]
    writer.write("plain\n")
    assert lines == ["plain\n"] and writer.encoding == "utf-8"
    token = printlog.REQUEST_ID.set("r1")
    try:
        logged: list[str] = []
        monkeypatch.setattr(writer, "_emit", lambda rid, line: logged.append(f"{rid}:{line}"))
        writer.write("x\ny")
        writer.flush()
    finally:
        printlog.REQUEST_ID.reset(token)
    assert logged == ["r1:x", "r1:y"] and lines == ["plain\n"]
