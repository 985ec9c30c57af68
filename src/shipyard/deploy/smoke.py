"""Smoke test of a deployed scoring endpoint: one real request, checked for shape and type.

A failed check never raises: the result says what was wrong, so CI can print it and decide.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

_RETRY_SLEEP_S = 0.25
_MAX_SLEEP_S = 2.0


@dataclass
class SmokeResult:
    """Outcome of a smoke test."""

    passed: bool
    status_code: int | None
    attempts: int
    latency_ms: float | None
    detail: str
    response: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for reports and endpoint records."""
        return asdict(self)


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def is_mlflow_payload(payload: Any) -> bool:
    """A payload in one of MLflow's /invocations formats (sent there instead of /score)."""
    return isinstance(payload, dict) and any(k in payload for k in MLFLOW_KEYS)


def payload_rows(payload: Any) -> int | None:
    """How many rows a sample payload has (one prediction is expected per row)."""
    if not isinstance(payload, dict):
        return None
    for key, rows in (("data", payload.get("data")), *((k, payload.get(k)) for k in MLFLOW_KEYS)):
        if key == "dataframe_split" and isinstance(rows, dict):
            rows = rows.get("data")
        if isinstance(rows, list):
            return len(rows)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_predictions(body: Any, expected_rows: int | None) -> str | None:
    """Return what is wrong with a scoring response body, or None if it looks right."""
    if isinstance(body, dict) and "result" in body:
        predictions = body["result"]
    elif isinstance(body, dict) and "predictions" in body:  # MLflow's /invocations
        predictions = body["predictions"]
    elif isinstance(body, list):
        predictions = body
    elif isinstance(body, dict):
        return f"response has no 'result' field (keys: {', '.join(map(str, body)) or 'none'})"
    else:
        return f"response is a JSON {type(body).__name__}, expected an object with 'result' or a list"
    if not isinstance(predictions, list):
        return f"'result' is a {type(predictions).__name__}, expected a list of predictions"
    if expected_rows is not None and len(predictions) != expected_rows:
        return f"expected {expected_rows} predictions (one per input row), got {len(predictions)}"
    bad = [(i, p) for i, p in enumerate(predictions) if not _is_number(p)]
    if bad:
        i, value = bad[0]
        return f"{len(bad)} prediction(s) are not finite numbers, first at index {i}: {value!r}"[:300]
    return None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def smoke_test(
    url: str,
    payload: dict[str, Any],
    timeout_s: float,
    expected_rows: int | None = None,
    key: str | None = None,
) -> SmokeResult:
    """POST ``payload`` to ``{url}/score`` and check the answer has one number per input row.

    Connection errors and 5xx answers are retried until ``timeout_s`` has passed. ``expected_rows``
    defaults to ``len(payload["data"])`` when the payload has a ``data`` list.
    """
    if expected_rows is None:
        expected_rows = payload_rows(payload)
    endpoint = url.rstrip("/") + ("/invocations" if is_mlflow_payload(payload) else "/score")
    deadline = time.monotonic() + timeout_s
    attempts = 0
    sleep = _RETRY_SLEEP_S
    last = SmokeResult(False, None, 0, None, f"no attempt made within {timeout_s:g} s")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(trust_env=False, headers=headers) as client:
        while True:
            attempts += 1
            remaining = max(deadline - time.monotonic(), 0.5)
            started = time.perf_counter()
            try:
                response = client.post(endpoint, json=payload, timeout=min(remaining, 30.0))
            except httpx.HTTPError as exc:
                last = SmokeResult(
                    False, None, attempts, None, f"POST {endpoint} failed: {type(exc).__name__}: {exc}"
                )
            else:
                latency_ms = round((time.perf_counter() - started) * 1000, 3)
                body = _body(response)
                status = response.status_code
                if status < 500:
                    return _judge(endpoint, status, attempts, latency_ms, body, expected_rows)
                last = SmokeResult(
                    False,
                    status,
                    attempts,
                    latency_ms,
                    f"POST {endpoint} returned {status}: {str(body)[:300]}",
                    body,
                )
            if time.monotonic() + sleep >= deadline:
                last.detail += f" (gave up after {attempts} attempt(s) in {timeout_s:g} s)"
                return last
            time.sleep(sleep)
            sleep = min(sleep * 2, _MAX_SLEEP_S)


def _judge(
    endpoint: str, status: int, attempts: int, latency_ms: float, body: Any, expected_rows: int | None
) -> SmokeResult:
    if status != 200:
        detail = f"POST {endpoint} returned {status}, expected 200: {str(body)[:300]}"
        return SmokeResult(False, status, attempts, latency_ms, detail, body)
    problem = check_predictions(body, expected_rows)
    if problem:
        return SmokeResult(False, status, attempts, latency_ms, problem, body)
    rows = "" if expected_rows is None else f" {expected_rows} prediction(s)"
    return SmokeResult(True, status, attempts, latency_ms, f"200 with{rows} in {latency_ms:g} ms", body)
