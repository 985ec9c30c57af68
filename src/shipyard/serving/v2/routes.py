"""The Open Inference Protocol (KServe V2, Triton's HTTP/REST protocol): health, metadata, infer.

Routes, served for the one model the app holds (``app.state.servable``, a `Servable`)::

    GET  /v2/health/live                                    {"live": true}
    GET  /v2/health/ready                                   {"ready": true} | 503 {"ready": false}
    GET  /v2                                                server metadata
    GET  /v2/models/{name}[/versions/{version}]             model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready       {"name", "ready"}
    POST /v2/models/{name}[/versions/{version}]/infer       typed tensors in, "predict" out

Errors are the protocol's ``{"error": "<message>"}`` bodies: 400 for a malformed request (the
message names the input and element; 422 when the model refuses the values, see
``user_errors``), 404 for another model name or version, 500 with the request id when the
model fails. Scoring goes through ``app.state.predict_rows(rows, request)``, the app's one path
to the model (timeouts, micro-batching, threadpool); the exceptions the app answers itself
(timeouts, overload, body too large) pass through untouched.

Tensors come as JSON ``data`` or in the binary tensor data extension (binary.py; the server
metadata lists ``binary_tensor_data``), and the output goes back in binary when the request asks
for it (``binary_data`` / ``binary_data_output``), as tritonclient does by default. Shared memory
is not supported (400). A compressed request body has been decoded by the body limit
(server/codings.py); a response is compressed when the request's Accept-Encoding asks for gzip or
deflate and it is at least 1 KiB (tritonclient's ``response_compression_algorithm``).

The model metadata's output (``predict``) is the model's declared output (its signature:
`Servable.output_spec`), else one FP64 per row; infer answers in exactly that datatype (see
`tensors.encode_output`), so the metadata tells what the responses carry.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard import distribution
from shipyard.errors import ShipyardError
from shipyard.serving.bounds import ParseBounds
from shipyard.serving.errors import printable
from shipyard.serving.servable import PredictionShapeError, Servable, check_predictions
from shipyard.serving.server.codings import encode_response
from shipyard.serving.server.limits import Overloaded, ScoringTimeout
from shipyard.serving.user_errors import failure_message
from shipyard.serving.v2 import binary
from shipyard.serving.v2.tensors import (
    DEFAULT_OUTPUT,
    Tensor,
    TensorError,
    check_compatible,
    decode_tensor,
    encode_output,
    tensor_header,
)
from shipyard.serving.validation import ScoringInputError

logger = logging.getLogger("shipyard.serving.v2")

SERVER_NAME = "shipyard"
PLATFORM = "shipyard"
OUTPUT_NAME = "predict"
# The name a model is served under when its bundle records none.
DEFAULT_MODEL_NAME = "model"
# What the app answers itself (503 with Retry-After, 504, ...): these pass through predict_rows
# untouched, as does any exception carrying one of APP_HANDLED_STATUSES as ``status_code``.
APP_ERRORS: tuple[type[BaseException], ...] = (Overloaded, ScoringTimeout, HTTPException, TimeoutError)
APP_HANDLED_STATUSES = frozenset({413, 429, 503, 504})

Handler = Callable[[Request], Awaitable[Response]]


class V2Error(Exception):
    """A request this module answers with ``{"error": message}`` and ``status_code``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def json_response(body: Any, status_code: int = 200) -> Response:
    """A JSON response encoded with orjson (NaN and infinity become null)."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def error_response(status_code: int, message: str) -> Response:
    """The protocol's error body, ``{"error": message}``."""
    return json_response({"error": printable(message)}, status_code)


def _handles_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except V2Error as exc:
            return error_response(exc.status_code, exc.message)

    return wrapped


def _servable(request: Request) -> Servable:
    servable = getattr(request.app.state, "servable", None)
    if servable is None:
        raise V2Error(503, "the model is not loaded yet; retry when /v2/health/ready answers 200")
    return servable


def served_name(servable: Servable) -> str:
    """The name the model answers to under /v2/models/."""
    return servable.model_name or DEFAULT_MODEL_NAME


def _model(request: Request) -> Servable:
    """The served model if the path names it (and its version, when given), else a 404."""
    servable = _servable(request)
    name = request.path_params["model_name"]
    version = request.path_params.get("model_version")
    served = served_name(servable)
    if name != served:
        raise V2Error(404, f"model '{name}' is not served here; this server serves '{served}'")
    if version is not None and version != servable.model_version:
        have = f"'{servable.model_version}'" if servable.model_version else "no versions"
        raise V2Error(404, f"model '{name}' has no version '{version}'; it serves {have}")
    return servable


def _is_ready(request: Request) -> bool:
    state = request.app.state
    return bool(getattr(state, "ready", False)) and getattr(state, "servable", None) is not None


async def server_live(request: Request) -> Response:
    """Liveness: the process answers requests."""
    return json_response({"live": True})


async def server_ready(request: Request) -> Response:
    """Readiness: 200 once the model is loaded and the app is ready, else 503."""
    ready = _is_ready(request)
    return json_response({"ready": ready}, 200 if ready else 503)


EXTENSIONS = ["binary_tensor_data"]


async def server_metadata(request: Request) -> Response:
    """Server name, version and the protocol extensions supported."""
    return json_response({"name": SERVER_NAME, "version": _server_version(), "extensions": EXTENSIONS})


@functools.cache
def _server_version() -> str:
    # The installed distribution's version (shipyard.__version__ is the same number): serving
    # imports nothing of shipyard but the two stdlib-only leaves (errors, distribution) and itself.
    return distribution.version()


@_handles_errors
async def model_metadata(request: Request) -> Response:
    """Name, versions, platform and the input/output tensors of the served model."""
    servable = _model(request)
    spec = servable.input_spec()
    inputs = (
        [{"name": spec["name"], "datatype": spec["datatype"], "shape": list(spec["shape"])}] if spec else []
    )
    output = servable.output_spec() or DEFAULT_OUTPUT
    return json_response(
        {
            "name": served_name(servable),
            "versions": [servable.model_version] if servable.model_version else [],
            "platform": PLATFORM,
            "inputs": inputs,
            "outputs": [
                {"name": OUTPUT_NAME, "datatype": output["datatype"], "shape": list(output["shape"])}
            ],
        }
    )


@_handles_errors
async def model_ready(request: Request) -> Response:
    """Model readiness: 200 when ready, 503 while the app is not, 404 for another model."""
    servable = _model(request)
    ready = _is_ready(request)
    return json_response({"name": served_name(servable), "ready": ready}, 200 if ready else 503)


def _parse_request(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise V2Error(400, 'the body is empty; send an inference request {"inputs": [...]}')
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise V2Error(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise V2Error(400, "the body must be a JSON object with 'inputs'")
    if "id" in payload and not isinstance(payload["id"], str):
        raise V2Error(400, "'id' must be a string")
    if payload.get("parameters") is not None and not isinstance(payload["parameters"], dict):
        raise V2Error(400, "'parameters' must be an object")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(400, "'inputs' must be a non-empty array of input tensors")
    outputs = payload.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise V2Error(400, "'outputs' must be an array of {\"name\": ...} objects")
        for i, output in enumerate(outputs):
            name = output.get("name") if isinstance(output, dict) else None
            if not isinstance(name, str):
                raise V2Error(400, f"outputs[{i}]: 'name' must be a string")
            if name != OUTPUT_NAME:
                raise V2Error(400, f"unknown output '{name}'; the model has one output, '{OUTPUT_NAME}'")
    return payload


def _select_input(tensors: list[Tensor], spec: dict[str, Any] | None) -> Tensor:
    if spec is not None:
        for tensor in tensors:
            if tensor.name == spec["name"]:
                return tensor
    if len(tensors) == 1:
        return tensors[0]
    names = ", ".join(f"'{t.name}'" for t in tensors)
    wanted = f"input '{spec['name']}'" if spec else "one input tensor"
    raise V2Error(400, f"the model takes {wanted}; the request has inputs {names}")


def _decode_inputs(
    payload: dict[str, Any], servable: Servable, data: memoryview | None, bounds: ParseBounds
) -> Tensor:
    inputs = payload["inputs"]
    try:
        if data is None:
            tensors = [decode_tensor(spec, i) for i, spec in enumerate(inputs)]
        else:
            headers = [tensor_header(spec, i) for i, spec in enumerate(inputs)]
            parts = binary.input_bytes(headers, data)
            # The elements sent binary count against max_body_elements as JSON values do.
            bounds.check_elements(
                sum(math.prod(h.shape) for h, part in zip(headers, parts, strict=True) if part is not None)
            )
            tensors = [
                decode_tensor(spec, i) if part is None else binary.decode_binary(header, part)
                for i, (spec, header, part) in enumerate(zip(inputs, headers, parts, strict=True))
            ]
    except TensorError as exc:
        raise V2Error(400, str(exc)) from exc
    except ScoringInputError as exc:
        raise V2Error(exc.status_code, str(exc)) from exc
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise V2Error(400, f"input '{tensor.name}' is given more than once")
        seen.add(tensor.name)
    spec = servable.input_spec()
    tensor = _select_input(tensors, spec)
    if spec is not None:
        try:
            check_compatible(tensor, spec)
        except TensorError as exc:
            raise V2Error(400, str(exc)) from exc
    if tensor.shape[0] == 0:
        raise V2Error(400, f"input '{tensor.name}': shape {list(tensor.shape)} has no rows to score")
    return tensor


async def _predict(request: Request, servable: Servable, rows: list[Any]) -> list[Any]:
    predict_rows = getattr(request.app.state, "predict_rows", None)
    try:
        if predict_rows is None:  # an app without its own scoring path: score directly
            predictions = await run_in_threadpool(servable.predict_rows, rows)
        else:
            predictions = await predict_rows(rows, request)
        return check_predictions(rows, predictions)
    except APP_ERRORS:
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status in APP_HANDLED_STATUSES:
            raise
        if isinstance(exc, ShipyardError) and isinstance(status, int) and 400 <= status < 500:
            raise V2Error(status, str(exc)) from exc  # e.g. the servable rejected the input
        request_id = request.scope.get("state", {}).get("request_id")
        logger.exception("V2 inference failed for %s rows (request_id=%s)", len(rows), request_id)
        if isinstance(exc, PredictionShapeError):
            raise V2Error(500, f"the model returned a wrong number of predictions: {exc}") from exc
        raise V2Error(500, failure_message("the model", exc, request_id)) from exc


@_handles_errors
async def infer(request: Request) -> Response:
    """Score the request's input tensor: one "predict" value per row of its first dimension."""
    servable = _model(request)
    body = await request.body()
    header_length = request.headers.get(binary.HEADER)
    data: memoryview | None = None
    if header_length is not None:
        try:
            body, data = binary.split_body(body, header_length)
        except TensorError as exc:
            raise V2Error(400, str(exc)) from exc
    bounds = getattr(request.app.state, "bounds", None) or ParseBounds()
    try:
        bounds.check_json(body)  # depth and size, before parsing
    except ScoringInputError as exc:
        raise V2Error(exc.status_code, str(exc)) from exc
    payload = _parse_request(body)
    try:
        as_binary = binary.wants_binary(payload, OUTPUT_NAME)
    except TensorError as exc:
        raise V2Error(400, str(exc)) from exc
    tensor = _decode_inputs(payload, servable, data, bounds)
    predictions = await _predict(request, servable, tensor.rows())
    try:
        output = encode_output(OUTPUT_NAME, predictions, servable.output_spec())
    except ValueError as exc:
        logger.error("V2 inference: %s", exc)
        raise V2Error(500, f"the model's predictions cannot be returned: {exc}") from exc
    response: dict[str, Any] = {"model_name": served_name(servable)}
    if servable.model_version:
        response["model_version"] = servable.model_version
    if "id" in payload:
        response["id"] = payload["id"]
    if not as_binary:
        response["outputs"] = [output.to_json()]
        return _compressed(request, orjson.dumps(response), {}, "application/json")
    header, tensor_bytes = binary.binary_output(output)
    response["outputs"] = [header]
    head = orjson.dumps(response)
    extra = {"Inference-Header-Content-Length": str(len(head))}
    return _compressed(request, head + tensor_bytes, extra, binary.CONTENT_TYPE)


def _compressed(request: Request, body: bytes, headers: dict[str, str], media_type: str) -> Response:
    """The infer answer, gzip- or deflate-compressed when the request's Accept-Encoding asks."""
    accept = request.headers.get("accept-encoding")
    if accept is not None:
        body, coding = encode_response(body, accept)
        if coding is not None:
            headers = {**headers, "Content-Encoding": coding, "Vary": "Accept-Encoding"}
    return Response(body, media_type=media_type, headers=headers)


def v2_routes() -> list[Route]:
    """The Open Inference Protocol REST routes, to be mounted at the app's root."""
    model = "/v2/models/{model_name}"
    version = model + "/versions/{model_version}"
    return [
        Route("/v2/health/live", server_live, methods=["GET"], name="v2_server_live"),
        Route("/v2/health/ready", server_ready, methods=["GET"], name="v2_server_ready"),
        Route("/v2", server_metadata, methods=["GET"], name="v2_server_metadata"),
        Route(model, model_metadata, methods=["GET"], name="v2_model_metadata"),
        Route(version, model_metadata, methods=["GET"], name="v2_model_version_metadata"),
        Route(model + "/ready", model_ready, methods=["GET"], name="v2_model_ready"),
        Route(version + "/ready", model_ready, methods=["GET"], name="v2_model_version_ready"),
        Route(model + "/infer", infer, methods=["POST"], name="v2_infer"),
        Route(version + "/infer", infer, methods=["POST"], name="v2_version_infer"),
    ]
