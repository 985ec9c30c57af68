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
import math
import os

import httpx
import numpy as np
import pandas as pd
import pytest
from bundles import make_bundle, serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
PYFUNC_MODEL = "fuzz-pyfunc"
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
# SHIPYARD_FUZZ_EXAMPLES=5000 runs a longer, randomized fuzz (new examples on every run).
EXAMPLES = int(os.environ.get("SHIPYARD_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES,
    derandomize="SHIPYARD_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
V2_DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES", "BF16", "fp64", "STRING", "",
]  # fmt: skip


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


# -- strategies --------------------------------------------------------------------------------
# Floats from subnormal to huge, integers past 64 bits, unicode text: what JSON can carry.
# Magnitudes stop at 1e300 so that the Ridge's predictions stay finite: a finite input whose
# prediction overflows is answered 500 by /score, 200 with null by V2 and /invocations (see the
# report); that is a choice about results, not about parsing input, and is left out here.
# Inputs that once caused 5xx are pinned by the regression tests at the end of this file.
HUGE = 1e300
numbers = st.one_of(
    st.floats(min_value=-HUGE, max_value=HUGE, allow_nan=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -0.0, 1e-320, 5e-324, HUGE, -HUGE, -(2**63), 2**64, 10**30]),
)


texts = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
pyfunc_cells = scalars
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
moderate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
pyfunc_json_values = st.recursive(
    pyfunc_cells,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
non_json = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [b"", b" ", b"{", b'{"data": [[1,2', b"\xff\xfe\x00", b"null", b"[]", b"{}", b'"data"', b"\x00" * 8]
    ),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def rows_of(width: st.SearchStrategy[int], cell: st.SearchStrategy) -> st.SearchStrategy:
    return width.flatmap(lambda w: st.lists(st.lists(cell, min_size=w, max_size=w), min_size=1, max_size=4))


def score_payloads_of(cells: st.SearchStrategy, values: st.SearchStrategy) -> st.SearchStrategy:
    """/score bodies: any JSON, dicts with and without "data", rows of any and of the right width."""
    return st.one_of(
        values,
        st.dictionaries(st.text(max_size=8), values, max_size=4),
        st.fixed_dictionaries({"data": values}),
        st.fixed_dictionaries({"data": rows_of(st.integers(0, 12), cells)}),
        st.fixed_dictionaries({"data": rows_of(st.just(10), moderate)}),
        st.fixed_dictionaries({"data": rows_of(st.just(10), st.one_of(moderate, cells))}),
    )


score_payloads = score_payloads_of(scalars, json_values)
pyfunc_score_payloads = score_payloads_of(pyfunc_cells, pyfunc_json_values)


@st.composite
def v2_requests(draw) -> object:
    """V2 inference requests: tensors the model takes, well-formed tensors of random datatypes and
    shapes, and broken ones."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(json_values)
    datatype = draw(st.sampled_from(V2_DATATYPES))
    if kind in (1, 4):  # consistent shape and element count, values of the datatype's kind (mostly)
        if kind == 4:  # what the model takes: [n, 10] of a numeric type
            datatype = draw(st.sampled_from(["FP64", "FP32", "INT64", "INT32"]))
            n, w = draw(st.integers(1, 4)), 10
        else:
            widths = [10, 10, 10, 1, 3, 0]
            n, w = draw(st.integers(0, 4)), draw(st.sampled_from(widths))
        cell = {
            "BOOL": st.booleans(),
            "BYTES": st.text(max_size=5),
        }.get(
            datatype,
            st.one_of(st.integers(-300, 300), moderate) if "FP" in datatype else st.integers(-300, 300),
        )
        flat = draw(st.lists(cell, min_size=n * w, max_size=n * w))
        shapes = [[n, w]] if kind == 4 or not n * w else [[n, w], [n, w], [n * w], [n, w, 1]]
        shape = draw(st.sampled_from(shapes))
        nested = draw(st.booleans()) and len(shape) == 2
        data = [flat[i * w : (i + 1) * w] for i in range(n)] if nested else flat
    else:  # anything in the fields
        shape = draw(st.one_of(st.lists(st.integers(-2, 12), max_size=4), json_values))
        data = draw(json_values)
    tensor = {"name": draw(st.sampled_from(["data", "data", "inputs", "x", ""])), "datatype": datatype}
    tensor.update({"shape": shape, "data": data})
    sometimes = st.integers(0, 3).map(lambda i: i == 0)  # optional fields: valid or not
    params = st.one_of(st.just({}), st.dictionaries(st.text(max_size=6), scalars, max_size=3), json_values)
    if draw(sometimes):
        tensor["parameters"] = draw(st.one_of(params, st.just({"binary_data_size": 8})))
    body: dict = {"inputs": [tensor] * draw(st.sampled_from([1, 1, 1, 2])) if kind in (1, 4) else [tensor]}
    if draw(sometimes):
        body["id"] = draw(st.one_of(st.text(max_size=6), st.text(max_size=6), numbers))
    if draw(sometimes):
        body["outputs"] = draw(st.one_of(st.just([{"name": "predict"}]), json_values))
    if draw(sometimes):
        body["parameters"] = draw(params)
    return body


invocation_keys = st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params"])
invocation_payloads = st.one_of(
    pyfunc_json_values,
    st.dictionaries(invocation_keys, pyfunc_json_values, min_size=1, max_size=2),
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {
                    "columns": st.one_of(st.just(COLUMNS), st.lists(st.sampled_from(COLUMNS), max_size=11)),
                    "data": rows_of(st.sampled_from([10, 10, 9]), st.one_of(moderate, pyfunc_cells)),
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            # Complete records, or one record with columns left out: records that leave out
            # columns the others have are a known bug (missing values, NaN, see below).
            "dataframe_records": st.one_of(
                st.lists(
                    st.fixed_dictionaries({c: st.one_of(moderate, pyfunc_cells) for c in COLUMNS}),
                    min_size=1,
                    max_size=3,
                ),
                st.lists(
                    st.dictionaries(st.sampled_from(COLUMNS), st.one_of(moderate, pyfunc_cells), max_size=10),
                    max_size=1,
                ),
            )
        }
    ),
    st.fixed_dictionaries(
        {"inputs": rows_of(st.sampled_from([10, 10, 4]), st.one_of(moderate, pyfunc_cells))}
    ),
    st.fixed_dictionaries({"instances": rows_of(st.just(10), moderate)}),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; format=pandas-split",
        "text/csv",
        "application/vnd.apache.parquet",
        "text/plain",
        "",
    ]
)


def body_and_type(payloads: st.SearchStrategy) -> st.SearchStrategy:
    """(bytes, content type): JSON of a drawn payload, or bytes that are not JSON."""
    return st.one_of(
        st.tuples(payloads.map(lambda p: json.dumps(p).encode()), st.just("application/json")),
        st.tuples(non_json, st.sampled_from(["application/json", "text/plain"])),
    )


# -- checks ------------------------------------------------------------------------------------
def check_answer(r: httpx.Response, protocol: str) -> object:
    """No 5xx; a 4xx has the protocol's JSON error body. Returns the decoded body."""
    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    body = r.json()  # every answer is JSON
    if r.status_code >= 400:
        if protocol == "azureml":
            assert set(body) == {"error"}, body
            err = body["error"]
            assert isinstance(err["code"], str) and err["code"]
            assert isinstance(err["message"], str) and err["message"]
            assert err["request_id"] == r.headers["x-request-id"]
        elif protocol == "v2":
            assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
        else:
            assert isinstance(body.get("error_code"), str) and body["error_code"], body
            assert isinstance(body.get("message"), str) and body["message"], body
    return body


def expected(model, rows) -> list[float]:
    return model.predict(np.asarray(rows, dtype=float)).tolist()


def finite(values) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


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
