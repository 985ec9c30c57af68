"""MLflow's error contract for model input: the errors, their codes, and the body ``/invocations`` sends.

MLflow's scoring server answers input errors with HTTP 400 and ``{"error_code": "BAD_REQUEST" |
"INVALID_PARAMETER_VALUE", "message": ...}``; Shipyard adds ``field`` when one column or row is at
fault, and answers an unsupported content type with 415. MLflow's own exceptions (schema
enforcement, type conversion) become these errors, naming the column where MLflow's message does.
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.serving.errors import printable
from shipyard.serving.validation import MalformedBodyError, ScoringInputError

# MLflow's error codes (mlflow.protos.databricks_pb2), both answered with HTTP 400 by MLflow.
BAD_REQUEST = "BAD_REQUEST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"

_CONVERT_COLUMN = re.compile(r"Failed to convert column (?P<col>.+?) to type")
_MISSING_INPUTS = re.compile(r"missing inputs \[(?P<cols>[^\]]*)\]")


class PyfuncBodyError(MalformedBodyError):
    """A request body that cannot be parsed into model input (HTTP 400), with MLflow's error code."""

    def __init__(self, message: str, field: str | None = None, *, error_code: str = BAD_REQUEST) -> None:
        super().__init__(message, field)
        self.error_code = error_code


class PyfuncSchemaError(ScoringInputError):
    """Parsed input that does not match the model's signature; ``field`` names the column.

    Shipyard's own routes answer 422; ``/invocations`` answers 400 as MLflow does.
    """

    def __init__(
        self, message: str, field: str | None = None, *, error_code: str = INVALID_PARAMETER_VALUE
    ) -> None:
        super().__init__(message, field)
        self.error_code = error_code


class UnsupportedContentTypeError(ScoringInputError):
    """A content type (or charset) the scoring server does not read (HTTP 415)."""

    code = "unsupported_media_type"
    status_code = 415
    error_code = BAD_REQUEST


def schema_error_from_mlflow(exc: Exception) -> PyfuncSchemaError:
    """MLflow's schema-enforcement error, without the (possibly huge) data it quotes."""
    message = getattr(exc, "message", None) or str(exc)
    detail = message.rsplit("Error: ", 1)[-1].strip() if "Error: " in message else message
    column = None
    if match := _MISSING_INPUTS.search(detail):
        names = [n.strip().strip("'\"") for n in match["cols"].split(",") if n.strip()]
        column = names[0] if names else None
    elif match := _CONVERT_COLUMN.search(detail):
        column = match["col"]
    return PyfuncSchemaError(f"Failed to enforce the model's input schema: {detail}", column)


def input_error_from_mlflow(exc: Exception, input_format: str) -> ScoringInputError:
    """An MLflow error raised while parsing ``input_format``, as a Shipyard input error."""
    from mlflow.utils.proto_json_utils import MlflowFailedTypeConversion

    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, MlflowFailedTypeConversion):
        match = _CONVERT_COLUMN.search(message)
        return PyfuncSchemaError(message, match["col"] if match else input_format, error_code=BAD_REQUEST)
    error_code = getattr(exc, "error_code", BAD_REQUEST) or BAD_REQUEST
    if error_code == INVALID_PARAMETER_VALUE:
        return PyfuncSchemaError(message, input_format)
    return PyfuncBodyError(message, input_format, error_code=BAD_REQUEST)


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
