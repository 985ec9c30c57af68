"""The Azure ML routes: `POST /score` (what every Azure ML client calls) and `GET /swagger.json`.

`ScoreRoute` is built once the model is loaded and answers a body: the script's own run() gets the
body as text (after the manifest signature's checks), or a dict when the body carries images or
files (uploads.py); an MLflow model or a batching server gets its rows. The same object is the
endpoint of the Starlette route and what the fast path (server/fastpath.py) calls, so both paths
give the same scoring and error answers. Answers are JSON encoded with orjson (numpy-safe); NaN
and infinities are refused, not sent as null.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from shipyard.serving.azureml.script import ParsedBody, ScoringScript
from shipyard.serving.azureml.swagger import SwaggerVersionError, build_swagger
from shipyard.serving.azureml.uploads import B64_KEY, UnsupportedUpload, Uploads, described, upload_kind
from shipyard.serving.bounds import ParseBounds
from shipyard.serving.errors import error_response
from shipyard.serving.server.codings import MalformedEncoding
from shipyard.serving.server.limits import Overloaded, ScoringTimeout
from shipyard.serving.server.middleware import BodyTooLarge, first_headers
from shipyard.serving.user_errors import failure_message
from shipyard.serving.validation import ScoringInputError, parse_body, validate_payload

logger = logging.getLogger("shipyard.serving")


def _jsonable(obj: Any) -> Any:
    # numpy arrays and scalars, without importing numpy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_bytes(body: Any) -> bytes:
    """orjson-encoded JSON (numpy-safe); NaN and infinities are refused, not sent as null.
    A str or bytes body that is JSON already is sent as it is, else as a JSON string."""
    if isinstance(body, str | bytes | bytearray):
        raw = body.encode() if isinstance(body, str) else bytes(body)
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            raw = orjson.dumps(body if isinstance(body, str) else raw.decode())
        return raw
    _reject_non_finite(body)
    return orjson.dumps(body, default=_jsonable, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: Any, status_code: int = 200) -> Response:
    """`json_bytes` as a Starlette response."""
    return Response(json_bytes(body), status_code=status_code, media_type="application/json")


def _reject_non_finite(value: Any) -> None:
    if type(value) is float:  # the common case first: x - x is 0.0 only for finite x
        if value - value != 0.0:
            raise ValueError("the result contains NaN or infinity, which JSON cannot carry")
    elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("the result contains NaN or infinity, which JSON cannot carry")
    elif isinstance(value, list | tuple):
        for v in value:
            _reject_non_finite(v)
    elif isinstance(value, dict):
        for v in value.values():
            _reject_non_finite(v)


def rows_of(payload: Any, name: str) -> list:
    """The rows of a row-based request: under "data" (Azure ML's usual key) or the input's name."""
    key = "data" if isinstance(payload, dict) and "data" in payload else name
    rows = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ScoringInputError(f'body: expected {{"{key}": [row, ...]}} with at least one row', key)
    return rows


class ScoreRoute:
    """The scoring of `POST /score`, built once the model is loaded: what it answers to a body."""

    def __init__(
        self,
        servable: Any,
        call: Any,
        predict_rows: Any,
        batching: bool,
        capture: Any,
        metrics: Any,
        bounds: ParseBounds | None = None,
        max_image_pixels: int = 4096 * 4096,
    ) -> None:
        self.servable = servable
        self.bounds = bounds or ParseBounds()
        self.call = call
        self.predict_rows = predict_rows
        self.capture = capture
        self.metrics = metrics
        # The script's own run() gets the body as text, unless batching stacks rows from many.
        self.run_script = isinstance(servable, ScoringScript) and not batching
        self.checks = servable.checks if isinstance(servable, ScoringScript) else None
        self.input_name = (servable.input_spec() or {}).get("name", "data")
        # Images and files go to an undecorated run() (a decorated one takes JSON: its decorators).
        self.uploads: Uploads | None = None
        if self.run_script and not servable.schema_decorated:
            self.uploads = Uploads.for_signature(servable.checks, max_image_pixels)

    async def answer(self, scope: Scope, read: Any, content_type: bytes | None = None) -> bytes | Response:
        """The JSON body of the answer (200), or the error response; `read()` gives the body."""
        request_id = scope["state"]["request_id"]
        try:
            body = await read()
            # An image or a multipart form (uploads.py); the test costs a plain JSON request nothing.
            kind = (
                upload_kind(content_type) if content_type is not None and content_type[:1] in b"im" else None
            )
            if kind is not None:
                if self.uploads is None:
                    raise UnsupportedUpload(self._no_uploads(), "body")
                decode = (
                    self.uploads.image_body(body)
                    if kind == b"image"
                    else await self.uploads.form(content_type or b"", body)
                )
                payload, result = await self.call(self._run_upload, decode, _run_headers(scope, request_id))
                return self._answer(scope, request_id, payload, result)
            self.bounds.check_json(body)  # depth and size, before any parser or the script sees it
            if self.uploads is not None and B64_KEY in body:
                decode_b64 = self.uploads.json_payload(parse_body(body)[1])
                if decode_b64 is not None:
                    headers = _run_headers(scope, request_id)
                    payload, result = await self.call(self._run_upload, decode_b64, headers)
                    return self._answer(scope, request_id, payload, result)
            if self.run_script:
                raw = payload = self.servable.validate(body)
                result = await self.call(self.servable.run, raw, _run_headers(scope, request_id))
            else:  # row-based: batching on, or an MLflow model behind the Azure ML route
                _, payload = parse_body(body)
                if self.checks is not None:
                    validate_payload(payload, self.checks)  # names the bad field
                result = {"result": await self.predict_rows(rows_of(payload, self.input_name), None)}
        except ScoringInputError as exc:
            extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
            return error_response(scope, exc.status_code, exc.code, str(exc), **extra)
        except Overloaded as exc:
            self.metrics.rejected("overloaded")
            headers = {"Retry-After": str(exc.retry_after_s)}
            return error_response(scope, 503, "overloaded", str(exc), headers=headers)
        except ScoringTimeout as exc:
            self.metrics.rejected("timeout")
            return error_response(scope, 504, "scoring_timeout", str(exc))
        except (BodyTooLarge, MalformedEncoding):
            raise  # the body limit answers 413, or 400 for bad compressed data
        except ClientDisconnect:
            # Gone, or its body did not arrive in time (server/connections.py answered 408 and closed).
            return error_response(scope, 408, "request_timeout", "the request body did not arrive")
        except Exception as exc:
            logger.exception("run() failed (request_id=%s)", request_id)
            subject = "the scoring script" if isinstance(self.servable, ScoringScript) else "the model"
            return error_response(scope, 500, "scoring_failed", failure_message(subject, exc, request_id))
        return self._answer(scope, request_id, payload, result)

    def _run_upload(self, decode: Callable[[], Any], headers: dict[str, str]) -> tuple[Any, Any]:
        """In the scoring slot: decode the uploads, check them against the signature, run()."""
        payload = decode()
        validate_payload(payload, self.servable.checks)
        return described(payload), self.servable.run(payload, headers)

    def _no_uploads(self) -> str:
        if self.run_script:
            return "this run() takes JSON through its inference-schema decorators, not images or files"
        return (
            "this server scores rows (an MLflow model, or batching on): send JSON rows, not images or files"
        )

    def _answer(self, scope: Scope, request_id: str, payload: Any, result: Any) -> bytes | Response:
        try:
            answer = json_bytes(result)
        except (TypeError, ValueError) as exc:
            logger.exception("run() returned a result that is not JSON (request_id=%s)", request_id)
            message = f"the scoring script returned a result that cannot be sent as JSON: {exc}"
            return error_response(scope, 500, "invalid_result", message)
        if self.capture is not None:
            # The parsed request, not its text (validate() returns the body as text).
            inputs = payload.payload if isinstance(payload, ParsedBody) else payload
            if isinstance(inputs, str):
                inputs = orjson.loads(inputs)
            self.capture.capture(request_id, inputs, result)
        return answer

    async def endpoint(self, request: Request) -> Response:
        """The Starlette endpoint (the middleware stack has done ids, auth and the body limit)."""
        answer = await self.answer(
            request.scope, request.body, first_headers(request.scope).get(b"content-type")
        )
        if isinstance(answer, Response):
            return answer
        return Response(answer, media_type="application/json")


def _run_headers(scope: Scope, request_id: str) -> dict[str, str]:
    # As `{**request.headers}`: names in order of first appearance, each with its first value.
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    headers["x-request-id"] = request_id
    return headers


def azureml_routes() -> list[Route]:
    """`POST /score` (through `app.state.score`, a `ScoreRoute`) and `GET /swagger.json`."""

    async def score(request: Request) -> Response:
        # POST /score reaches Starlette only without the fast path (a root path, or no model yet).
        return await request.app.state.score.endpoint(request)

    async def swagger(request: Request) -> Response:
        try:
            doc = build_swagger(request.app.state.servable, request.query_params.get("version"))
        except SwaggerVersionError as exc:
            return error_response(request, 404, "not_found", str(exc))
        return json_response(doc)

    return [
        Route("/score", score, methods=["POST"]),
        Route("/swagger.json", swagger, methods=["GET"]),
    ]
