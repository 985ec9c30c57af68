"""Error bodies, in the shape each protocol's clients expect.

- Azure ML style (`/score`, everything else): `{"error": {"code", "message", "request_id", ...}}`
- Open Inference Protocol V2 (`/v2/...`): `{"error": "<message>"}`
- MLflow scoring server (`/invocations`): `{"error_code": "...", "message": "..."}`
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope

_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    422: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
}


def printable(text: str) -> str:
    """`text` as it can be sent as UTF-8: a lone surrogate from a request body (JSON's
    ``"\\ud800"``, which a message may quote) becomes its escape, ``\\ud800``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def error_response(
    where: Scope | Request,
    status_code: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A JSON error response shaped for the protocol of the request's path."""
    scope = where.scope if isinstance(where, Request) else where
    message = printable(message)
    extra = {k: printable(v) if isinstance(v, str) else v for k, v in extra.items()}
    path = scope.get("path", "")
    request_id = scope.get("state", {}).get("request_id")
    if path.startswith("/v2"):
        body: dict[str, Any] = {"error": message}
    elif path.startswith("/invocations"):
        body = {"error_code": _MLFLOW_CODES.get(status_code, "INTERNAL_ERROR"), "message": message}
    else:
        body = {"error": {"code": code, "message": message, "request_id": request_id, **extra}}
    return JSONResponse(body, status_code=status_code, headers=headers)
