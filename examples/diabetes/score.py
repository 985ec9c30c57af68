"""Scoring script with the Azure ML contract: init() once, then run(raw_data) per request.

Request:  {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}
Response: {"result": [prediction, ...]}
Invalid input raises ValueError; the server answers it 4xx with the message (422 at /score); any
other exception is a 500 with the request id (docs/serving.md, "Exceptions from your code").
"""

import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np

N_FEATURES = 10

model = None


def init() -> None:
    """Load the model from the folder Azure ML (or Shipyard) puts it in."""
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")


def run(raw_data: str | bytes | dict[str, Any]) -> dict[str, list[float]]:
    """Predict for each row of `data` in the JSON request."""
    if model is None:
        raise RuntimeError("init() must be called before run()")
    rows = _parse(raw_data)
    return {"result": [float(p) for p in model.predict(rows)]}


def _parse(raw_data: str | bytes | dict[str, Any]) -> np.ndarray:
    if isinstance(raw_data, str | bytes | bytearray):
        try:
            payload = json.loads(raw_data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from None
    else:
        payload = raw_data
    if not isinstance(payload, dict) or "data" not in payload:
        raise ValueError('expected a JSON object {"data": [[10 numbers], ...]}')
    try:
        rows = np.asarray(payload["data"], dtype=float)
    except (TypeError, ValueError):
        raise ValueError("'data' must be a list of rows of numbers (no strings or ragged rows)") from None
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != N_FEATURES:
        raise ValueError(
            f"'data' must be a non-empty list of rows with {N_FEATURES} numbers each "
            f"(age, sex, bmi, bp, s1..s6); got shape {rows.shape}"
        )
    if not np.isfinite(rows).all():
        raise ValueError("'data' must contain finite numbers only (no nulls, NaN or infinity)")
    return rows
