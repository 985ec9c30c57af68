"""MLflow's scoring payloads: request bodies parsed into model input as ``/invocations`` does.

JSON bodies hold exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``,
``inputs`` (plus optional ``params``); CSV and Parquet bodies are DataFrames. Parsing is delegated
to MLflow's own functions (``mlflow.pyfunc.scoring_server``) so that casting to the signature's
types behaves exactly as in MLflow; Shipyard adds checks that name the column at fault, and accepts
plain rows (``{"inputs": [[...], ...]}``) for models whose signature is a list of columns, which
MLflow rejects.

Input errors carry MLflow's error codes: MLflow's scoring server answers them with HTTP 400 and
``{"error_code": "BAD_REQUEST" | "INVALID_PARAMETER_VALUE", "message": ...}``; Shipyard adds
``field`` when one column or row is at fault, and answers an unsupported content type with 415.
MLflow's own exceptions (schema enforcement, type conversion) become these errors, naming the
column where MLflow's message does.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.serving.bounds import ParseBounds
from shipyard.serving.validation import MalformedBodyError, ScoringInputError

if TYPE_CHECKING:
    from mlflow.types import Schema

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CONTENT_TYPE_JSON, CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET)

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
# In MLflow's order of mention; MLflow prints its set, whose order varies between processes.
SUPPORTED_FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PARAMS_KEY = "params"

REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{" + ", ".join(f"'{k}'" for k in SUPPORTED_FORMATS) + "}"
)

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


@dataclass
class ParsedInput:
    """A request body parsed into what ``model.predict`` takes, and its ``params``."""

    data: Any
    params: dict[str, Any] | None = None
    rows: int | None = None


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header; 415 for other charsets or unknown parameters."""
    if not content_type:
        raise UnsupportedContentTypeError(
            f"The request has no Content-Type header; send one of {', '.join(CONTENT_TYPES)}."
        )
    mime, *pairs = (part.strip() for part in content_type.split(";"))
    params = {
        key.strip().lower(): value.strip().strip('"')
        for key, _, value in (p.partition("=") for p in pairs if p)
    }
    charset = params.pop("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedContentTypeError("The scoring server only supports UTF-8")
    if params:
        raise UnsupportedContentTypeError(
            f"Unrecognized content type parameters: {', '.join(sorted(params))}."
        )
    mime = mime.lower()
    if mime not in CONTENT_TYPES:
        raise UnsupportedContentTypeError(
            f"This predictor only supports the following content types: {list(CONTENT_TYPES)}. "
            f"Got '{content_type}'."
        )
    return mime


def _decode_json(payload: bytes | str) -> dict[str, Any]:
    """The JSON object of a body, or PyfuncBodyError with MLflow's wording."""
    try:
        decoded = json.loads(payload)
    except RecursionError:
        # Only without the server's depth bound (serving/bounds.py), e.g. from the Python API.
        raise PyfuncBodyError("Invalid input. The JSON is nested too deeply to parse.", "body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        # json.JSONDecodeError is a ValueError; bytes that are not UTF-8 raise UnicodeDecodeError.
        detail = (
            f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise PyfuncBodyError(
            f"Invalid input. Ensure that input is a valid JSON formatted string. Error: {detail}"
        ) from None
    if isinstance(decoded, dict):
        return decoded
    kind = "a list" if isinstance(decoded, list) else f"a JSON {type(decoded).__name__}"
    raise PyfuncBodyError(f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received {kind}.", "body")


def _select_format(payload: dict[str, Any]) -> str:
    found = [key for key in SUPPORTED_FORMATS if key in payload]
    if len(found) != 1:
        raise PyfuncBodyError(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(payload)}.", "body"
        )
    return found[0]


def _is_row_list(value: Any) -> bool:
    """A non-empty list of rows that are lists (not records)."""
    return isinstance(value, list) and bool(value) and all(isinstance(row, list) for row in value)


def _n_rows(data: Any) -> int | None:
    if hasattr(data, "shape") and getattr(data, "shape", None):
        return int(data.shape[0])
    if isinstance(data, list):
        return len(data)
    return None


def _csv_message(exc: Exception) -> str:
    return (
        "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid CSV-formatted "
        f"Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` method. Error: '{exc}'"
    )


def _csv_bad_column(text: str, dtypes: dict[str, Any]) -> str | None:
    """The first column whose values do not convert to the signature's type."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str)
    except Exception:
        return None
    for column, dtype in dtypes.items():
        if column in frame.columns:
            try:
                frame[column].astype(dtype)
            except (ValueError, TypeError):
                return column
    return None


def _table_width(input_format: str, value: Any) -> int:
    """The number of columns of a JSON table: its column names, or its widest row or record."""
    if input_format == DF_SPLIT and isinstance(value, dict):
        columns, data = value.get("columns"), value.get("data")
        width = len(columns) if isinstance(columns, list) else 0
        rows = data if isinstance(data, list) else []
    elif isinstance(value, dict):  # columnar inputs: {"column": [values], ...}
        return len(value)
    else:
        rows = value if isinstance(value, list) else []
        width = 0
    for row in rows:
        if isinstance(row, list | dict):
            width = max(width, len(row))
    return width


def _check_dataframe_json(input_format: str, value: Any) -> None:
    """Shape checks of dataframe_split/records, before pandas turns them into a DataFrame."""
    if input_format == DF_SPLIT:
        if not isinstance(value, dict):
            got = "list" if isinstance(value, list) else type(value).__name__
            raise PyfuncBodyError(
                f"Invalid input. Dataframe split format must be a dictionary. Got {got}.", DF_SPLIT
            )
        data, columns = value.get("data"), value.get("columns")
        if isinstance(data, list) and isinstance(columns, list):
            for i, row in enumerate(data):
                if isinstance(row, list) and len(row) != len(columns):
                    where = f"{DF_SPLIT}.data[{i}]"
                    raise PyfuncBodyError(
                        f"Invalid input. {where}: expected {len(columns)} values (one per column), "
                        f"got {len(row)}",
                        where,
                    )
    elif not isinstance(value, list):
        got = "dictionary" if isinstance(value, dict) else type(value).__name__
        raise PyfuncBodyError(
            f"Invalid input. Dataframe records format must be a list of records. Got {got}.", DF_RECORDS
        )


@dataclass(frozen=True)
class PayloadParser:
    """Parses bodies for one model: its input ``schema``, its ``columns`` (None unless the
    signature is a list of named columns) and whether the signature comes from type hints."""

    schema: Schema | None
    columns: list[str] | None
    type_hints: bool = False
    bounds: ParseBounds | None = None

    def parse(self, payload: dict[str, Any] | bytes | str, content_type: str | None) -> ParsedInput:
        """Parse a request body (or an already decoded JSON object) as MLflow's scoring server does."""
        if isinstance(payload, dict):
            return self._parse_json(payload)
        mime = media_type(content_type)
        if mime == CONTENT_TYPE_JSON:
            return self._parse_json(_decode_json(payload))
        if mime == CONTENT_TYPE_CSV:
            return self._parse_csv(payload)
        return self._parse_parquet(payload)

    # -- parsing -------------------------------------------------------------------------------
    def _parse_json(self, payload: dict[str, Any]) -> ParsedInput:
        from mlflow.exceptions import MlflowException

        input_format = _select_format(payload)
        params = payload.get(PARAMS_KEY)
        if params is not None and not isinstance(params, dict):
            raise PyfuncBodyError(f"'params' must be a JSON object, got {type(params).__name__}", PARAMS_KEY)
        value = payload[input_format]
        if self.bounds is not None:
            self.bounds.check_columns(_table_width(input_format, value), input_format)
        if self.type_hints:
            # Models whose signature comes from type hints take the raw 'inputs' value (as in MLflow).
            if input_format != INPUTS:
                raise PyfuncSchemaError(
                    "Request payload must be a dictionary with 'inputs' key when the model contains a "
                    f"valid type hint. Found keys in payload: {list(payload)}.",
                    input_format,
                )
            return ParsedInput(value, params, _n_rows(value))
        if self.columns is not None and input_format in (INSTANCES, INPUTS) and _is_row_list(value):
            # Plain rows for a column-based signature: MLflow rejects these ("missing inputs"),
            # Shipyard maps the values to the signature's columns by position.
            return ParsedInput(self.rows_to_input(value, where=input_format), params, len(value))
        if input_format in (DF_SPLIT, DF_RECORDS):
            _check_dataframe_json(input_format, value)
        from mlflow.pyfunc.scoring_server import infer_and_parse_data

        try:
            # MLflow annotates schema as Schema, with None its default (no schema: infer)
            data = infer_and_parse_data({input_format: value}, self.schema)  # type: ignore[arg-type]
        except MlflowException as exc:
            raise input_error_from_mlflow(exc, input_format) from None
        except (TypeError, ValueError) as exc:
            raise PyfuncBodyError(f"Invalid input. {input_format}: {exc}", input_format) from None
        self._check_columns(data)
        return ParsedInput(data, params, _n_rows(data))

    def _parse_csv(self, payload: bytes | str) -> ParsedInput:
        import pandas as pd

        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        except UnicodeDecodeError as exc:
            raise PyfuncBodyError(
                f"Invalid input. Ensure that input is a valid UTF-8 encoded string. Error: {exc}"
            ) from None
        if not text.strip():
            raise PyfuncBodyError(
                "Invalid input. The CSV body is empty; send a header line and rows.", "body"
            )
        dtypes = self._pandas_dtypes()
        try:
            data = pd.read_csv(io.StringIO(text), dtype=dtypes)
        except (ValueError, TypeError) as exc:
            column = _csv_bad_column(text, dtypes) if dtypes else None
            if column is not None:
                raise PyfuncSchemaError(
                    f"Data is not compatible with model signature. Failed to convert column {column} to "
                    f"type '{dtypes[column]}'. Error: {exc}",
                    column,
                    error_code=BAD_REQUEST,
                ) from None
            raise PyfuncBodyError(_csv_message(exc), "body") from None
        except Exception as exc:  # pandas' ParserError, EmptyDataError, ...
            raise PyfuncBodyError(_csv_message(exc), "body") from None
        self._check_columns(data)
        return ParsedInput(data, None, len(data))

    def _parse_parquet(self, payload: bytes | str) -> ParsedInput:
        import pandas as pd

        raw = payload.encode("utf-8") if isinstance(payload, str) else payload
        try:
            data = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:
            raise PyfuncBodyError(
                "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid Parquet "
                f"Pandas DataFrame produced using the `pandas.DataFrame.to_parquet()` method. Error: '{exc}'",
                "body",
            ) from None
        self._check_columns(data)
        return ParsedInput(data, None, len(data))

    def rows_to_input(self, rows: list[Any], where: str) -> Any:
        """Rows as model input: a DataFrame with the signature's columns, or a numpy array."""
        import numpy as np

        if self.columns is not None:
            import pandas as pd

            width = len(self.columns)
            for i, row in enumerate(rows):
                if not isinstance(row, list | tuple) or len(row) != width:
                    got = f"{len(row)} values" if isinstance(row, list | tuple) else type(row).__name__
                    names = ", ".join(self.columns)
                    raise PyfuncSchemaError(
                        f"{where}[{i}]: expected {width} values ({names}), got {got}", f"{where}[{i}]"
                    )
            frame = pd.DataFrame(rows, columns=self.columns)
            return self._cast_frame(frame)
        dtype: np.dtype[Any] | None = None
        if self.schema is not None and self.schema.is_tensor_spec():
            if len(self.schema.inputs) != 1:
                tensors = [spec.name for spec in self.schema.inputs]
                raise PyfuncSchemaError(
                    f"the model takes several named tensors {tensors}; send them by name", where
                )
            dtype = self.schema.inputs[0].type  # type: ignore[assignment]  # a TensorSpec's: a numpy dtype
        try:
            return np.asarray(rows, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: 2**64 as an int64
            raise PyfuncSchemaError(f"{where}: cannot make an array of the rows ({exc})", where) from None

    def _cast_frame(self, frame: Any) -> Any:
        """Cast columns to the signature's types as MLflow does, naming the column that fails."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema

        try:
            return cast_df_types_according_to_schema(frame, self.schema)
        except MlflowException as exc:
            raise input_error_from_mlflow(exc, "rows") from None

    def _check_columns(self, data: Any) -> None:
        """Missing required columns, named (MLflow says so only after building its error)."""
        if self.columns is None or self.schema is None:
            return
        present = (
            set(data.columns) if hasattr(data, "columns") else set(data) if isinstance(data, dict) else None
        )
        if present is None:
            return
        missing = [c for c in self.schema.required_input_names() if c not in present]
        if missing:
            expected = ", ".join(self.columns[:20]) + (", ..." if len(self.columns) > 20 else "")
            raise PyfuncSchemaError(
                f"Model is missing inputs {missing}. The signature's columns: {expected}.",
                str(missing[0]),
            )

    def _pandas_dtypes(self) -> dict[str, Any]:
        if self.columns is None or self.schema is None:
            return {}
        try:
            # column-based (checked by pandas_types below): the names are str
            names = self.schema.input_names()
            return dict(zip(names, self.schema.pandas_types(), strict=True))  # type: ignore[arg-type]
        except Exception:  # Array/Object columns have no pandas type; let pandas infer.
            return {}
