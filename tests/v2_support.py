"""What the V2 unit tests (tests/serving/test_v2_*.py) share: the V2 routes on a bare app, an echoing
servable and request/answer helpers. Their fixtures are in tests/serving/conftest.py."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Ridge
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from shipyard.serving.v2.routes import v2_routes

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

    def __init__(
        self, name: str | None = "echo", version: str | None = "1", spec: Any = None, output: Any = None
    ) -> None:
        self.model_name = name
        self.model_version = version
        self.spec = spec
        self.output = output
        self.seen: list[Any] = []

    def input_spec(self) -> dict[str, Any] | None:
        return self.spec

    def output_spec(self) -> dict[str, Any] | None:
        return self.output

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        self.seen.append(rows)
        return rows


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
