"""The routes of MLflow's scoring server (``mlflow models serve``), so that its clients change nothing.

- ``POST /invocations``: an MLflow payload (see ``payloads``) in, ``{"predictions": ...}``
  out; input errors answer MLflow's error body (``error_body`` below).
- ``GET /ping``: 200 (a newline, as MLflow answers) once the model is loaded; ``GET /version``:
  MLflow's version. (``GET /health`` is the app's own health answer, as ``GET /``: see serving/app.py.)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shipyard.serving.bounds import ParseBounds
from shipyard.serving.errors import error_response, printable
from shipyard.serving.mlflow.payloads import BAD_REQUEST, CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, media_type
from shipyard.serving.server.limits import Overloaded, ScoringTimeout
from shipyard.serving.user_errors import failure_message
from shipyard.serving.validation import ScoringInputError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

logger = logging.getLogger("shipyard.serving")


def _json_bytes(obj: Any) -> bytes:
    """Compact JSON; NaN and infinities become null (MLflow writes NaN, which is not JSON)."""
    import orjson

    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "item"):
            return value.item()
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    return orjson.dumps(obj, default=default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def error_body(exc: ScoringInputError) -> dict[str, Any]:
    """MLflow's error body for an input error: error_code and message (and field, if known)."""
    message = printable(str(exc))
    body: dict[str, Any] = {"error_code": getattr(exc, "error_code", BAD_REQUEST), "message": message}
    if exc.field:
        body["field"] = printable(exc.field)
    return body


def invocations_status(exc: ScoringInputError) -> int:
    """HTTP status for an input error at /invocations: 415 for the content type, 413 for a body over
    the server's parse bounds, else 400 (MLflow)."""
    return exc.status_code if exc.status_code in (413, 415) else 400


def pyfunc_routes() -> list[Route]:
    """MLflow scoring server routes: POST /invocations, GET /ping, /version.

    They read ``app.state.servable`` (a PyfuncModel), ``app.state.ready`` and ``app.state.call``
    (an async callable ``call(fn, *args)`` that runs ``fn`` in a thread with the app's timeouts
    and concurrency limits; its errors other than input errors propagate to the app).
    """
    from starlette.responses import Response
    from starlette.routing import Route

    async def invocations(request: Request) -> Response:
        servable = getattr(request.app.state, "servable", None)
        if servable is None or not hasattr(servable, "predict_payload"):
            body = {
                "error_code": "RESOURCE_DOES_NOT_EXIST",
                "message": "this deployment serves an Azure ML scoring script: POST /score instead",
            }
            return Response(_json_bytes(body), status_code=404, media_type=CONTENT_TYPE_JSON)
        payload = await request.body()
        content_type = request.headers.get("content-type")
        bounds = getattr(request.app.state, "bounds", None) or ParseBounds()
        try:
            # 415 and the parse bounds (400/413) before taking a scoring slot.
            mime = media_type(content_type)
            if mime == CONTENT_TYPE_JSON:
                bounds.check_json(payload)
            elif mime == CONTENT_TYPE_CSV:
                bounds.check_csv(payload)
            else:
                bounds.check_parquet(payload)
            predictions = await request.app.state.call(
                servable.predict_payload, payload, content_type, bounds
            )
        except ScoringInputError as exc:
            return Response(
                _json_bytes(error_body(exc)),
                status_code=invocations_status(exc),
                media_type=CONTENT_TYPE_JSON,
            )
        except (Overloaded, ScoringTimeout):
            raise
        except Exception as exc:
            # Not the input (see user_errors): MLflow's server would answer 400 with the stack
            # trace; a fault of the deployment is a 500, and the traceback stays in the log.
            request_id = request.scope.get("state", {}).get("request_id")
            logger.exception("the model failed (request_id=%s)", request_id)
            message = failure_message("the model", exc, request_id)
            return error_response(request, 500, "scoring_failed", message)
        return Response(_json_bytes({"predictions": predictions}), media_type=CONTENT_TYPE_JSON)

    async def ping(request: Request) -> Response:
        if getattr(request.app.state, "ready", False):
            # MLflow answers a newline with this media type.
            return Response("\n", media_type=CONTENT_TYPE_JSON)
        body = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "the model is not loaded yet"}
        return Response(_json_bytes(body), status_code=503, media_type=CONTENT_TYPE_JSON)

    async def version(request: Request) -> Response:
        return Response(_mlflow_version(), media_type=CONTENT_TYPE_JSON)

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]


def _mlflow_version() -> str:
    """MLflow's version as its server answers it (plain text), without importing mlflow."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    from mlflow.version import VERSION

    return VERSION
