"""Fuzzing real server processes over HTTP: whatever a client sends to /score, the V2 infer route
or /invocations, the answer is never a 5xx, a 4xx carries the protocol's JSON error body, a 200
carries the model's predictions, and the server still answers afterwards.

Hypothesis runs derandomized (the same examples on every run, no example database written):
a failure here is reproducible, not a flake. SHIPYARD_FUZZ_EXAMPLES=N runs N random examples
per route instead.
"""

from __future__ import annotations

import json
import logging
import os

import httpx
import numpy as np
import pandas as pd
import pytest
from bundles import make_bundle, serving
from fuzz_payloads import (
    COLUMNS,
    body_and_type,
    check_answer,
    content_types,
    expected,
    invocation_payloads,
    non_json,
    pyfunc_score_payloads,
    score_payloads,
    v2_requests,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
PYFUNC_MODEL = "fuzz-pyfunc"
# SHIPYARD_FUZZ_EXAMPLES=5000 runs a longer, randomized fuzz (new examples on every run).
EXAMPLES = int(os.environ.get("SHIPYARD_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES,
    derandomize="SHIPYARD_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# -- servers -----------------------------------------------------------------------------------
SETTINGS = {"auth": False, "max_body_mb": 1}


@pytest.fixture(scope="module")
def azureml(tmp_path_factory):
    """The example's score.py bundle (Azure ML contract), no batching."""
    root = tmp_path_factory.mktemp("fuzz-azureml")
    bundle, model = make_bundle(root / "bundle")
    with serving(bundle, root, SETTINGS, "fuzz-azureml") as proc:
        yield proc.url, model


@pytest.fixture(scope="module")
def pyfunc(tmp_path_factory):
    """A pyfunc bundle: an MLflow sklearn Ridge with a 10-column DataFrame signature, no score.py."""
    import mlflow.models
    import mlflow.sklearn

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("fuzz-pyfunc")
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(50, 10)), columns=COLUMNS)
    y = x.to_numpy() @ np.arange(1, 11) - 2.0
    ridge = Ridge(alpha=0.5).fit(x, y)
    bundle = root / "bundle"
    mlflow.sklearn.save_model(
        ridge,
        str(bundle / "model"),
        signature=mlflow.models.infer_signature(x, y),
        serialization_format="pickle",
    )
    manifest = {
        "flavor": "pyfunc",
        "model_name": PYFUNC_MODEL,
        "model_version": "1",
        "model_dir": "model",
        "entry_script": None,
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with serving(bundle, root, SETTINGS, "fuzz-pyfunc") as proc:
        yield proc.url, ridge


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client


# -- /score ------------------------------------------------------------------------------------
def test_fuzz_score_never_answers_5xx(azureml, http):
    url, model = azureml
    statuses: set[int] = set()

    @FUZZ
    @given(body_and_type(score_payloads))
    def run(case):
        content, content_type = case
        r = http.post(f"{url}/score", content=content, headers={"content-type": content_type})
        body = check_answer(r, "azureml")
        statuses.add(r.status_code)
        if r.status_code == 200:
            rows = json.loads(content)["data"]
            assert body["result"] == pytest.approx(expected(model, rows), rel=1e-9, nan_ok=False)

    run()
    assert {200, 400, 422} <= statuses  # the fuzz reached the model, the parser and the validator
    assert http.get(f"{url}/").json()["status"] == "healthy"


# -- /v2/models/{name}/infer ---------------------------------------------------------------------
def test_fuzz_v2_infer_never_answers_5xx(azureml, http):
    url, model = azureml
    statuses: set[int] = set()

    @FUZZ
    @given(st.one_of(v2_requests().map(lambda p: json.dumps(p).encode()), non_json))
    def run(content):
        r = http.post(
            f"{url}/v2/models/{MODEL}/infer", content=content, headers={"content-type": "application/json"}
        )
        body = check_answer(r, "v2")
        statuses.add(r.status_code)
        if r.status_code == 200:
            (tensor,) = json.loads(content)["inputs"]
            # The values as the server reads them (FP32 rounds), then float64 as the model takes them.
            dtype = {"FP16": np.float16, "FP32": np.float32}.get(tensor["datatype"], np.float64)
            rows = np.asarray(tensor["data"], dtype=dtype).astype(float).reshape(tensor["shape"][0], -1)
            (output,) = body["outputs"]
            assert output["data"] == pytest.approx(expected(model, rows), rel=1e-6)

    run()
    assert {200, 400} <= statuses
    assert http.get(f"{url}/v2/health/ready").json() == {"ready": True}


# -- /invocations (pyfunc) -------------------------------------------------------------------------
def test_fuzz_invocations_never_answers_5xx(pyfunc, http):
    url, ridge = pyfunc
    statuses: set[int] = set()

    @FUZZ
    @given(
        st.one_of(
            body_and_type(invocation_payloads),
            st.tuples(
                st.one_of(invocation_payloads.map(lambda p: json.dumps(p).encode()), non_json), content_types
            ),
        )
    )
    def run(case):
        content, content_type = case
        headers = {"content-type": content_type} if content_type else {}
        r = http.post(f"{url}/invocations", content=content, headers=headers)
        body = check_answer(r, "mlflow")
        statuses.add(r.status_code)
        if r.status_code == 200:
            assert isinstance(body["predictions"], list) and body["predictions"]

    run()
    assert {200, 400, 415} <= statuses
    assert http.get(f"{url}/ping").status_code == 200
    assert http.get(f"{url}/").json()["model_name"] == PYFUNC_MODEL


def test_fuzz_pyfunc_score_and_v2_never_answer_5xx(pyfunc, http):
    """The Azure ML and V2 routes of a pyfunc bundle (rows mapped to the signature's columns)."""
    url, ridge = pyfunc

    @settings(FUZZ, max_examples=EXAMPLES // 2)
    @given(
        st.one_of(
            pyfunc_score_payloads.map(lambda p: ("/score", "azureml", json.dumps(p).encode())),
            v2_requests().map(lambda p: (f"/v2/models/{PYFUNC_MODEL}/infer", "v2", json.dumps(p).encode())),
        )
    )
    def run(case):
        path, protocol, content = case
        r = http.post(f"{url}{path}", content=content, headers={"content-type": "application/json"})
        body = check_answer(r, protocol)
        if r.status_code == 200 and path == "/score":
            rows = pd.DataFrame(json.loads(content)["data"], columns=COLUMNS).astype(float)
            assert body["result"] == pytest.approx(ridge.predict(rows).tolist(), rel=1e-9)

    run()
    assert http.get(f"{url}/ping").status_code == 200


# -- known bugs, found by this fuzzing -------------------------------------------------------------
def _row(token: str) -> str:
    return "[[" + ", ".join([token] + ["0"] * 9) + "]]"


COLUMNS_JSON = json.dumps(COLUMNS)
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.parametrize("token", NON_FINITE)
def test_score_non_finite_number_is_a_4xx(azureml, http, token):
    url, _ = azureml
    r = http.post(
        f"{url}/score", content=f'{{"data": {_row(token)}}}', headers={"content-type": "application/json"}
    )
    check_answer(r, "azureml")
    assert r.status_code in (400, 422)


def test_score_integer_too_large_for_a_float_is_a_4xx(azureml, http):
    url, _ = azureml
    r = http.post(
        f"{url}/score", content=f'{{"data": {_row("9" * 400)}}}', headers={"content-type": "application/json"}
    )
    check_answer(r, "azureml")
    assert r.status_code == 422 and r.json()["error"]["field"] == "data[0][0]"


@pytest.mark.parametrize(
    ("shape", "token"),
    [
        ("dataframe_split", "null"),
        ("dataframe_split", "NaN"),
        ("inputs", "1e400"),
        ("instances", "Infinity"),
        ("dataframe_records", "a record without a column"),
    ],
)
def test_invocations_model_error_on_input_is_mlflows_400(pyfunc, http, token, shape):
    url, _ = pyfunc
    if shape == "dataframe_records":
        full = dict.fromkeys(COLUMNS, 0.0)
        body = json.dumps({"dataframe_records": [full, {k: v for k, v in full.items() if k != "bmi"}]})
    elif shape == "dataframe_split":
        body = f'{{"dataframe_split": {{"columns": {COLUMNS_JSON}, "data": {_row(token)}}}}}'
    else:
        body = f'{{"{shape}": {_row(token)}}}'
    r = http.post(f"{url}/invocations", content=body, headers={"content-type": "application/json"})
    check_answer(r, "mlflow")
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize("token", ["null", "NaN", '"nan"'])
def test_pyfunc_score_missing_value_is_a_4xx(pyfunc, http, token):
    url, _ = pyfunc
    r = http.post(
        f"{url}/score", content=f'{{"data": {_row(token)}}}', headers={"content-type": "application/json"}
    )
    check_answer(r, "azureml")
    assert r.status_code in (400, 422)


@pytest.mark.parametrize("shape", [[0, 0], [2, 0]])
def test_v2_fp64_zero_width_is_400(azureml, http, shape):
    url, _ = azureml
    body = {"inputs": [{"name": "data", "datatype": "FP64", "shape": shape, "data": []}]}
    r = http.post(f"{url}/v2/models/{MODEL}/infer", json=body)
    check_answer(r, "v2")
    assert r.status_code == 400
