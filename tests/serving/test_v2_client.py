"""A spec-conforming Open Inference Protocol client (tritonclient.http) against the V2 routes,
served by a real uvicorn server over TCP: the client works unchanged."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from bundles import SEED, make_bundle
from sklearn.linear_model import Ridge
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.v2.routes import v2_routes

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"


def make_app(bundle: Path) -> Starlette:
    servable = ScoringScript.load(bundle)
    app = Starlette(routes=v2_routes())
    app.state.servable = servable
    app.state.ready = True

    async def predict_rows(rows: list[Any], request: Request) -> list[Any]:
        return await run_in_threadpool(servable.predict_rows, rows)

    app.state.predict_rows = predict_rows
    return app


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Ridge]]:
    """(host:port, model) of a uvicorn server on a pre-bound ephemeral port, in a thread."""
    bundle, model = make_bundle(tmp_path / "bundle")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(bundle), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start within 15 s"
            time.sleep(0.02)
        yield f"127.0.0.1:{port}", model
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def client(served: tuple[str, Ridge]) -> Iterator[Any]:
    triton = httpclient.InferenceServerClient(url=served[0])
    try:
        yield triton
    finally:
        triton.close()


def test_health(client: Any) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version="3")
    assert not client.is_model_ready("other")
    assert not client.is_model_ready(MODEL, model_version="4")


def test_metadata(client: Any) -> None:
    server = client.get_server_metadata()
    assert server["name"] == "shipyard" and server["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata(MODEL)
    assert metadata["name"] == MODEL and metadata["versions"] == ["3"]
    assert metadata["inputs"] == [{"name": "data", "datatype": "FP64", "shape": [-1, 10]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("other")


def test_infer_matches_model_predict(client: Any, served: tuple[str, Ridge]) -> None:
    arr = np.asarray(SEED["data"], dtype=np.float64)
    infer_input = httpclient.InferInput("data", [2, 10], "FP64").set_data_from_numpy(arr, binary_data=False)
    result = client.infer(
        MODEL,
        inputs=[infer_input],
        outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)],
        request_id="req-1",
    )
    predictions = result.as_numpy("predict")
    assert predictions.dtype == np.float64 and predictions.shape == (2,)
    np.testing.assert_allclose(predictions, served[1].predict(arr), rtol=1e-12)
    response = result.get_response()
    assert response["id"] == "req-1" and response["model_name"] == MODEL and response["model_version"] == "3"


def test_infer_fp32_batch_versioned(client: Any, served: tuple[str, Ridge]) -> None:
    arr = np.random.default_rng(1).normal(size=(64, 10)).astype(np.float32)
    infer_input = httpclient.InferInput("data", list(arr.shape), "FP32").set_data_from_numpy(
        arr, binary_data=False
    )
    result = client.infer(MODEL, inputs=[infer_input], model_version="3")  # outputs left to the server
    np.testing.assert_allclose(result.as_numpy("predict"), served[1].predict(arr.astype(np.float64)))


def test_infer_errors_reach_the_client(client: Any) -> None:
    bad = httpclient.InferInput("data", [2, 9], "FP64").set_data_from_numpy(
        np.zeros((2, 9)), binary_data=False
    )
    with pytest.raises(InferenceServerException, match=r"\[2, 9\]") as info:
        client.infer(MODEL, inputs=[bad])
    assert info.value.status() == "400"
    shared = httpclient.InferInput("data", [2, 10], "FP64")
    shared.set_shared_memory("region", 160)
    with pytest.raises(InferenceServerException, match="shared memory tensors are not supported") as info:
        client.infer(MODEL, inputs=[shared])
    assert info.value.status() == "400"
