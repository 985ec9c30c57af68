"""Triton's own client (tritonclient.http) at its defaults against real Shipyard server processes: it
sends inputs in the binary tensor data extension and asks for binary outputs; with gzip and deflate
request bodies and compressed answers; BYTES, BF16 and N-d tensors; and the model metadata's
datatypes are what the infer answers carry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundles import SEED, make_bundle, make_pyfunc_bundle, serving

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.integration

SETTINGS = {"auth": False}
# rows of 8x8 arrays in, the sum of each row out
GRID_SCORE_PY = """\
import json
import numpy as np
def init():
    pass
def run(raw):
    data = np.asarray(json.loads(raw)["data"], dtype=float)
    return {"result": data.reshape(len(data), -1).sum(axis=1).tolist()}
"""
# strings in, upper-cased strings out: BYTES both ways (no signature: no shape, no datatype)
TEXT_SCORE_PY = """\
import json
def init():
    pass
def run(raw):
    return {"result": [text.upper() + "!" for text in json.loads(raw)["data"]]}
"""


def _with_signature(bundle: Path, signature: dict[str, Any] | None, name: str) -> Path:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["signature"] = signature or {}
    manifest["model_name"] = name
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Four real servers: the diabetes script, an 8x8 grid script, a text script, and an MLflow
    model whose output is float32 (its signature says so)."""
    root = tmp_path_factory.mktemp("v2-binary")
    ridge_bundle, ridge = make_bundle(root / "ridge")
    grid = _with_signature(
        make_bundle(root / "grid", GRID_SCORE_PY)[0],
        {"inputs": {"data": {"type": "array", "shape": [-1, 8, 8], "dtype": "float"}}},
        "grid",
    )
    text = _with_signature(make_bundle(root / "text", TEXT_SCORE_PY)[0], None, "text")
    x = np.random.default_rng(4).normal(size=(40, 10)).astype(np.float32)
    fp32 = make_pyfunc_bundle(root / "fp32", x, (x @ np.arange(10)).astype(np.float32), name="fp32")
    with (
        serving(ridge_bundle, root, SETTINGS, "ridge") as p1,
        serving(grid, root, SETTINGS, "grid") as p2,
        serving(text, root, SETTINGS, "text") as p3,
        serving(fp32, root, SETTINGS, "fp32") as p4,
    ):
        yield {"ridge": (p1, ridge), "grid": p2, "text": p3, "fp32": (p4, x)}


def client_of(proc: Any) -> Any:
    return httpclient.InferenceServerClient(url=proc.url.removeprefix("http://"))


@pytest.fixture
def ridge(servers) -> Iterator[tuple[Any, Any]]:
    proc, model = servers["ridge"]
    client = client_of(proc)
    yield client, model
    client.close()


def test_the_server_says_it_speaks_binary_tensors(ridge) -> None:
    assert ridge[0].get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_tritonclient_defaults_binary_in_and_out(ridge) -> None:
    client, model = ridge
    arr = np.asarray(SEED["data"], dtype=np.float64)
    infer_input = httpclient.InferInput("data", [2, 10], "FP64").set_data_from_numpy(arr)  # binary by default
    assert infer_input._get_tensor()["parameters"] == {"binary_data_size": 160}
    result = client.infer("diabetes-ridge", inputs=[infer_input], request_id="b-1")  # outputs: binary
    output = result.get_output("predict")
    assert output["parameters"] == {"binary_data_size": 16} and "data" not in output
    predictions = result.as_numpy("predict")
    assert predictions.dtype == np.float64 and predictions.shape == (2,)
    np.testing.assert_array_equal(predictions, model.predict(arr))
    assert result.get_response()["id"] == "b-1"


@pytest.mark.parametrize("datatype", ["FP32", "FP16", "INT32", "UINT8", "INT64"])
def test_binary_inputs_of_every_numeric_datatype(ridge, datatype: str) -> None:
    client, model = ridge
    from tritonclient.utils import triton_to_np_dtype

    arr = np.asarray(SEED["data"]).astype(triton_to_np_dtype(datatype))
    infer_input = httpclient.InferInput("data", [2, 10], datatype).set_data_from_numpy(arr)
    requested = [httpclient.InferRequestedOutput("predict")]  # binary_data=True by default
    result = client.infer("diabetes-ridge", inputs=[infer_input], outputs=requested)
    np.testing.assert_allclose(result.as_numpy("predict"), model.predict(arr.astype(np.float64)), rtol=1e-12)


def test_json_in_binary_out_and_binary_in_json_out(ridge) -> None:
    client, model = ridge
    arr = np.asarray(SEED["data"], dtype=np.float64)
    as_json = httpclient.InferInput("data", [2, 10], "FP64").set_data_from_numpy(arr, binary_data=False)
    result = client.infer("diabetes-ridge", inputs=[as_json])
    assert "binary_data_size" in result.get_output("predict")["parameters"]
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(arr))
    as_binary = httpclient.InferInput("data", [2, 10], "FP64").set_data_from_numpy(arr)
    json_out = [httpclient.InferRequestedOutput("predict", binary_data=False)]
    result = client.infer("diabetes-ridge", inputs=[as_binary], outputs=json_out)
    assert result.get_output("predict")["data"] == model.predict(arr).tolist()


@pytest.mark.parametrize("request_coding", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_coding", [None, "gzip", "deflate"])
def test_compressed_requests_and_answers(ridge, request_coding, response_coding) -> None:
    client, model = ridge
    arr = np.random.default_rng(5).normal(size=(300, 10))  # an answer of 2400 bytes: compressed when asked
    infer_input = httpclient.InferInput("data", list(arr.shape), "FP64").set_data_from_numpy(arr)
    result = client.infer(
        "diabetes-ridge",
        inputs=[infer_input],
        request_compression_algorithm=request_coding,
        response_compression_algorithm=response_coding,
    )
    np.testing.assert_allclose(result.as_numpy("predict"), model.predict(arr), rtol=1e-12)


def test_compressed_answer_headers(servers) -> None:
    import gzip

    import httpx

    proc, _ = servers["ridge"]
    arr = np.random.default_rng(6).normal(size=(300, 10))
    body = {
        "inputs": [{"name": "data", "datatype": "FP64", "shape": [300, 10], "data": arr.ravel().tolist()}]
    }
    url = proc.url + "/v2/models/diabetes-ridge/infer"
    with httpx.Client(trust_env=False) as http:
        asked = http.post(url, json=body, headers={"accept-encoding": "gzip"})
        assert asked.headers["content-encoding"] == "gzip" and asked.headers["vary"] == "Accept-Encoding"
        assert len(asked.json()["outputs"][0]["data"]) == 300
        refused = http.post(url, json=body, headers={"accept-encoding": "gzip;q=0, identity"})
        assert "content-encoding" not in refused.headers
        one_row = {"inputs": [{**body["inputs"][0], "shape": [1, 10], "data": arr[0].tolist()}]}
        small = http.post(url, json=one_row, headers={"accept-encoding": "gzip"})
        assert "content-encoding" not in small.headers  # under 1 KiB: sent as it is
    packed = httpx.post(
        url,
        content=gzip.compress(json.dumps(body).encode()),
        headers={"content-encoding": "gzip", "accept-encoding": "identity"},
        trust_env=False,
    )
    assert packed.status_code == 200 and len(packed.json()["outputs"][0]["data"]) == 300


def test_bytes_tensors_binary_both_ways(servers) -> None:
    client = client_of(servers["text"])
    words = np.array(["héllo", "", "wörld"], dtype=np.object_)
    infer_input = httpclient.InferInput("data", [3], "BYTES").set_data_from_numpy(words)
    result = client.infer("text", inputs=[infer_input])
    output = result.get_output("predict")
    assert output["datatype"] == "BYTES" and output["parameters"]["binary_data_size"] == 3 * 4 + len(
        "HÉLLO!!WÖRLD!".encode()
    )
    assert result.as_numpy("predict").tolist() == ["HÉLLO!".encode(), b"!", "WÖRLD!".encode()]
    client.close()


def test_n_d_tensors_follow_the_signature_shape(servers) -> None:
    client = client_of(servers["grid"])
    metadata = client.get_model_metadata("grid")
    assert metadata["inputs"] == [{"name": "data", "datatype": "FP64", "shape": [-1, 8, 8]}]
    grids = np.arange(3 * 64, dtype=np.float32).reshape(3, 8, 8)
    infer_input = httpclient.InferInput("data", [3, 8, 8], "FP32").set_data_from_numpy(grids)
    result = client.infer("grid", inputs=[infer_input])
    np.testing.assert_array_equal(result.as_numpy("predict"), grids.reshape(3, -1).sum(axis=1))
    # bfloat16 (tritonclient takes ml_dtypes' type): the server widens it to float32
    import ml_dtypes

    halves = np.full((1, 8, 8), 0.5, dtype=ml_dtypes.bfloat16)
    bf16 = httpclient.InferInput("data", [1, 8, 8], "BF16").set_data_from_numpy(halves)
    assert client.infer("grid", inputs=[bf16]).as_numpy("predict").tolist() == [32.0]
    wrong = httpclient.InferInput("data", [3, 8, 7], "FP32").set_data_from_numpy(grids[:, :, :7].copy())
    with pytest.raises(
        InferenceServerException, match=r"shape \[3, 8, 7\] does not match .*\[-1, 8, 8\]"
    ) as info:
        client.infer("grid", inputs=[wrong])
    assert info.value.status() == "400"
    client.close()


@pytest.mark.parametrize("model", ["ridge", "fp32", "text", "grid"])
def test_metadata_says_what_the_answers_carry(servers, model: str) -> None:
    proc = servers[model][0] if isinstance(servers[model], tuple) else servers[model]
    client = client_of(proc)
    name = {"ridge": "diabetes-ridge", "fp32": "fp32"}.get(model, model)
    inputs = {
        "ridge": ("data", np.asarray(SEED["data"], dtype=np.float64), "FP64"),
        "fp32": ("inputs", servers["fp32"][1][:4], "FP32"),
        "text": ("data", np.array(["a", "b"], dtype=np.object_), "BYTES"),
        "grid": ("data", np.ones((2, 8, 8)), "FP64"),
    }[model]
    metadata = client.get_model_metadata(name)
    [declared] = metadata["outputs"]
    infer_input = httpclient.InferInput(inputs[0], list(inputs[1].shape), inputs[2]).set_data_from_numpy(
        inputs[1]
    )
    for binary in (True, False):
        requested = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
        output = client.infer(name, inputs=[infer_input], outputs=requested).get_output("predict")
        assert output["name"] == declared["name"] == "predict"
        if model != "text":  # text: nothing declared, and no FP64 carries a string (docs/serving.md)
            assert output["datatype"] == declared["datatype"]
        assert len(output["shape"]) == len(declared["shape"])
        assert all(d in (-1, got) for d, got in zip(declared["shape"], output["shape"], strict=True))
    expected = {"ridge": "FP64", "fp32": "FP32", "text": "FP64", "grid": "FP64"}[model]
    assert declared["datatype"] == expected
    client.close()


def test_fp32_model_answers_fp32(servers) -> None:
    proc, x = servers["fp32"]
    client = client_of(proc)
    infer_input = httpclient.InferInput("inputs", [4, 10], "FP32").set_data_from_numpy(x[:4])
    predictions = client.infer("fp32", inputs=[infer_input]).as_numpy("predict")
    assert predictions.dtype == np.float32 and predictions.shape == (4,)
    client.close()


def test_binary_errors_reach_the_client(ridge) -> None:
    client, _ = ridge
    bad = httpclient.InferInput("data", [2, 9], "FP64").set_data_from_numpy(np.zeros((2, 9)))
    with pytest.raises(InferenceServerException, match=r"\[2, 9\]") as info:
        client.infer("diabetes-ridge", inputs=[bad])
    assert info.value.status() == "400"
