"""The MLflow pyfunc contract: a bundle without an entry script serves the MLflow model itself.

``PyfuncModel`` loads ``<bundle>/<manifest model_dir>`` with ``mlflow.pyfunc.load_model`` and
implements the ``Servable`` protocol. ``pyfunc_routes()`` are the routes of MLflow's scoring
server (``mlflow models serve``), so that clients moving to Shipyard change nothing:

- ``POST /invocations``: JSON with exactly one of ``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs`` (plus optional ``params``), ``text/csv`` or Parquet bodies; the answer
  is ``{"predictions": ...}``. Input errors answer 400 with MLflow's body
  ``{"error_code": "BAD_REQUEST" | "INVALID_PARAMETER_VALUE", "message": ...}`` (plus ``field``
  when one column or row is at fault), an unsupported content type 415.
- ``GET /ping``, ``GET /health``: 200 once the model is loaded; ``GET /version``: MLflow's version.

Parsing is delegated to MLflow's own functions (``mlflow.pyfunc.scoring_server``) so that casting
to the signature's types behaves exactly as in MLflow; Shipyard adds checks that name the column
at fault, and accepts plain rows (``{"inputs": [[...], ...]}``) for models whose signature is a
list of columns, which MLflow rejects.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.serving.scoring import (
    BundleError,
    MalformedBodyError,
    ScoringInputError,
    parse_signature,
    read_manifest,
)
from shipyard.serving.servable import check_predictions

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from mlflow.types import Schema
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

FLAVOR = "pyfunc"

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

# numpy dtype kinds/names and MLflow column types → KServe V2 datatypes.
_V2_BY_NUMPY = {
    "float64": "FP64",
    "float32": "FP32",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint64": "UINT64",
    "uint32": "UINT32",
    "uint16": "UINT16",
    "uint8": "UINT8",
    "bool": "BOOL",
}
_V2_BY_COLUMN = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}

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


@dataclass
class ParsedInput:
    """A request body parsed into what ``model.predict`` takes, and its ``params``."""

    data: Any
    params: dict[str, Any] | None = None
    rows: int | None = None


def _media_type(content_type: str | None) -> str:
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


def to_jsonable(predictions: Any) -> Any:
    """Predictions as JSON-ready Python objects, as MLflow writes them (DataFrames as records)."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series | np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, dict):
        return {str(k): to_jsonable(v) for k, v in predictions.items()}
    if isinstance(predictions, list | tuple):
        return [to_jsonable(v) for v in predictions]
    if isinstance(predictions, np.generic):
        return predictions.item()
    return predictions


def _schema_error_from_mlflow(exc: Exception) -> PyfuncSchemaError:
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


@dataclass
class PyfuncModel:
    """A bundle's MLflow model, loaded with ``mlflow.pyfunc.load_model``, ready to score."""

    bundle_dir: Path
    manifest: dict[str, Any]
    model: PyFuncModel
    schema: Schema | None = None
    _columns: list[str] | None = field(default=None, repr=False)

    @property
    def model_name(self) -> str | None:
        """The model name recorded in the manifest."""
        return self.manifest.get("model_name")

    @property
    def model_version(self) -> str | None:
        """The model version recorded in the manifest, as a string."""
        version = self.manifest.get("model_version")
        return None if version is None else str(version)

    @classmethod
    def load(cls, bundle_dir: str | Path) -> PyfuncModel:
        """Read the manifest and load ``<bundle>/<model_dir>`` as an MLflow pyfunc model."""
        bundle_dir = Path(bundle_dir).resolve()
        manifest = read_manifest(bundle_dir)
        flavor = manifest.get("flavor")
        if flavor not in (None, FLAVOR):
            raise BundleError(f"{bundle_dir}: manifest flavor is {flavor!r}, not {FLAVOR!r}")
        model_dir = manifest.get("model_dir")
        if not model_dir:
            raise BundleError(f"{bundle_dir}/manifest.json has no 'model_dir' (the MLflow model folder)")
        model_path = (bundle_dir / str(model_dir)).resolve()
        if not (model_path / "MLmodel").is_file():
            raise BundleError(f"{model_path} is not an MLflow model folder (no MLmodel file)")
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(str(model_path))
        return cls.from_model(model, bundle_dir=bundle_dir, manifest=manifest)

    @classmethod
    def from_model(
        cls, model: PyFuncModel, *, bundle_dir: Path | None = None, manifest: dict[str, Any] | None = None
    ) -> PyfuncModel:
        """Wrap an already loaded pyfunc model (tests, or callers that load it themselves)."""
        schema = model.metadata.get_input_schema() if model.metadata is not None else None
        columns = None
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            columns = list(schema.input_names())
        return cls(
            bundle_dir=bundle_dir or Path("."),
            manifest=dict(manifest or {}),
            model=model,
            schema=schema,
            _columns=columns,
        )

    # -- Servable ------------------------------------------------------------------------------
    def input_spec(self) -> dict[str, Any] | None:
        """The input as one tensor spec {"name", "datatype", "shape"}, or None if it is not one.

        From the MLflow signature: its single tensor, or ``inputs`` of shape [-1, N] for N numeric
        columns (FP64 unless every column has the same type); else from the manifest signature.
        """
        schema = self.schema
        if schema is not None:
            if schema.is_tensor_spec():
                if len(schema.inputs) != 1:
                    return None
                spec = schema.inputs[0]
                datatype = _V2_BY_NUMPY.get(str(spec.type), "BYTES")
                return {"name": spec.name or INPUTS, "datatype": datatype, "shape": list(spec.shape)}
            types = [str(getattr(col.type, "name", col.type)) for col in schema.inputs]
            if not types or any(t not in _V2_BY_COLUMN for t in types):
                return None
            datatype = _V2_BY_COLUMN[types[0]] if len(set(types)) == 1 else "FP64"
            return {"name": INPUTS, "datatype": datatype, "shape": [-1, len(types)]}
        checks = parse_signature(self.manifest.get("signature"))
        if not checks:
            return None
        check = checks[0]
        shape = [-1] if check.flat else [-1, check.width or -1]
        return {"name": check.name, "datatype": "INT64" if check.integer else "FP64", "shape": shape}

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        """Score rows (lists of values); one prediction per row, in order.

        With a column-based signature the rows become a DataFrame with its column names (in the
        signature's order); otherwise a numpy array (of the tensor's dtype when there is one).
        """
        if not isinstance(rows, list) or not rows:
            raise PyfuncSchemaError("rows: expected a non-empty list of rows", "rows")
        data = self._rows_to_input(rows, where="rows")
        predictions = self._predict(data, None)
        return check_predictions(rows, to_jsonable(predictions))

    # -- /invocations --------------------------------------------------------------------------
    def parse_payload(self, payload: dict[str, Any] | bytes | str, content_type: str | None) -> ParsedInput:
        """Parse a request body (or an already decoded JSON object) as MLflow's scoring server does."""
        if isinstance(payload, dict):
            return self._parse_json(payload)
        mime = _media_type(content_type)
        if mime == CONTENT_TYPE_JSON:
            return self._parse_json(_decode_json(payload))
        if mime == CONTENT_TYPE_CSV:
            return self._parse_csv(payload)
        return self._parse_parquet(payload)

    def predict_payload(
        self, payload: dict[str, Any] | bytes | str, content_type: str | None = CONTENT_TYPE_JSON
    ) -> Any:
        """Parse a body as MLflow's ``/invocations`` does, predict, and return JSON-ready predictions.

        Raises PyfuncBodyError (unparseable or ambiguous body), PyfuncSchemaError (does not match
        the signature; ``field`` names the column) or UnsupportedContentTypeError; errors of the
        model itself propagate unchanged.
        """
        parsed = self.parse_payload(payload, content_type)
        predictions = self._predict(parsed.data, parsed.params)
        return to_jsonable(predictions)

    # -- parsing -------------------------------------------------------------------------------
    def _parse_json(self, payload: dict[str, Any]) -> ParsedInput:
        from mlflow.exceptions import MlflowException

        input_format = _select_format(payload)
        params = payload.get(PARAMS_KEY)
        if params is not None and not isinstance(params, dict):
            raise PyfuncBodyError(f"'params' must be a JSON object, got {type(params).__name__}", PARAMS_KEY)
        value = payload[input_format]
        if self._from_type_hints():
            # Models whose signature comes from type hints take the raw 'inputs' value (as in MLflow).
            if input_format != INPUTS:
                raise PyfuncSchemaError(
                    "Request payload must be a dictionary with 'inputs' key when the model contains a "
                    f"valid type hint. Found keys in payload: {list(payload)}.",
                    input_format,
                )
            return ParsedInput(value, params, _n_rows(value))
        if self._columns is not None and input_format in (INSTANCES, INPUTS) and _is_row_list(value):
            # Plain rows for a column-based signature: MLflow rejects these ("missing inputs"),
            # Shipyard maps the values to the signature's columns by position.
            return ParsedInput(self._rows_to_input(value, where=input_format), params, len(value))
        if input_format in (DF_SPLIT, DF_RECORDS):
            self._check_dataframe_json(input_format, value)
        from mlflow.pyfunc.scoring_server import infer_and_parse_data

        try:
            data = infer_and_parse_data({input_format: value}, self.schema)
        except MlflowException as exc:
            raise self._parse_error(exc, input_format) from None
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
            column = self._csv_bad_column(text, dtypes) if dtypes else None
            if column is not None:
                raise PyfuncSchemaError(
                    f"Data is not compatible with model signature. Failed to convert column {column} to "
                    f"type '{dtypes[column]}'. Error: {exc}",
                    column,
                    error_code=BAD_REQUEST,
                ) from None
            raise PyfuncBodyError(self._csv_message(exc), "body") from None
        except Exception as exc:  # pandas' ParserError, EmptyDataError, ...
            raise PyfuncBodyError(self._csv_message(exc), "body") from None
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

    @staticmethod
    def _csv_message(exc: Exception) -> str:
        return (
            "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid CSV-formatted "
            f"Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` method. Error: '{exc}'"
        )

    @staticmethod
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

    @staticmethod
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

    def _parse_error(self, exc: Exception, input_format: str) -> ScoringInputError:
        from mlflow.utils.proto_json_utils import MlflowFailedTypeConversion

        message = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, MlflowFailedTypeConversion):
            match = _CONVERT_COLUMN.search(message)
            return PyfuncSchemaError(message, match["col"] if match else input_format, error_code=BAD_REQUEST)
        error_code = getattr(exc, "error_code", BAD_REQUEST) or BAD_REQUEST
        if error_code == INVALID_PARAMETER_VALUE:
            return PyfuncSchemaError(message, input_format)
        return PyfuncBodyError(message, input_format, error_code=BAD_REQUEST)

    def _rows_to_input(self, rows: list[Any], where: str) -> Any:
        """Rows as model input: a DataFrame with the signature's columns, or a numpy array."""
        import numpy as np

        if self._columns is not None:
            import pandas as pd

            width = len(self._columns)
            for i, row in enumerate(rows):
                if not isinstance(row, list | tuple) or len(row) != width:
                    got = f"{len(row)} values" if isinstance(row, list | tuple) else type(row).__name__
                    names = ", ".join(self._columns)
                    raise PyfuncSchemaError(
                        f"{where}[{i}]: expected {width} values ({names}), got {got}", f"{where}[{i}]"
                    )
            frame = pd.DataFrame(rows, columns=self._columns)
            return self._cast_frame(frame)
        dtype = None
        if self.schema is not None and self.schema.is_tensor_spec():
            if len(self.schema.inputs) != 1:
                names = [spec.name for spec in self.schema.inputs]
                raise PyfuncSchemaError(
                    f"the model takes several named tensors {names}; send them by name", where
                )
            dtype = self.schema.inputs[0].type
        try:
            return np.asarray(rows, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise PyfuncSchemaError(f"{where}: cannot make an array of the rows ({exc})", where) from None

    def _cast_frame(self, frame: Any) -> Any:
        """Cast columns to the signature's types as MLflow does, naming the column that fails."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.proto_json_utils import cast_df_types_according_to_schema

        try:
            return cast_df_types_according_to_schema(frame, self.schema)
        except MlflowException as exc:
            raise self._parse_error(exc, "rows") from None

    def _check_columns(self, data: Any) -> None:
        """Missing required columns, named (MLflow says so only after building its error)."""
        if self._columns is None or self.schema is None:
            return
        present = (
            set(data.columns) if hasattr(data, "columns") else set(data) if isinstance(data, dict) else None
        )
        if present is None:
            return
        missing = [c for c in self.schema.required_input_names() if c not in present]
        if missing:
            expected = ", ".join(self._columns[:20]) + (", ..." if len(self._columns) > 20 else "")
            raise PyfuncSchemaError(
                f"Model is missing inputs {missing}. The signature's columns: {expected}.",
                str(missing[0]),
            )

    def _pandas_dtypes(self) -> dict[str, Any]:
        if self._columns is None or self.schema is None:
            return {}
        try:
            return dict(zip(self.schema.input_names(), self.schema.pandas_types(), strict=True))
        except Exception:  # Array/Object columns have no pandas type; let pandas infer.
            return {}

    def _from_type_hints(self) -> bool:
        metadata = self.model.metadata
        check = getattr(metadata, "_is_signature_from_type_hint", None)
        return bool(check()) if callable(check) else False

    # -- prediction ----------------------------------------------------------------------------
    def _predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        """model.predict; MLflow's schema enforcement failures become PyfuncSchemaError."""
        from mlflow.exceptions import MlflowException

        try:
            if params:
                return self.model.predict(data, params=params)
            return self.model.predict(data)
        except MlflowException as exc:
            message = exc.message or ""
            if (
                getattr(exc, "error_class", None) == "SCHEMA_ENFORCEMENT_FAILED"
                or "enforce schema" in message
            ):
                raise _schema_error_from_mlflow(exc) from None
            if exc.get_http_status_code() == 400:
                raise PyfuncSchemaError(message, None, error_code=exc.error_code) from None
            raise


# -- HTTP --------------------------------------------------------------------------------------
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
    body: dict[str, Any] = {"error_code": getattr(exc, "error_code", BAD_REQUEST), "message": str(exc)}
    if exc.field:
        body["field"] = exc.field
    return body


def invocations_status(exc: ScoringInputError) -> int:
    """HTTP status for an input error at /invocations: 415 for the content type, else 400 (MLflow)."""
    return 415 if isinstance(exc, UnsupportedContentTypeError) else 400


def pyfunc_routes() -> list[Route]:
    """MLflow scoring server routes: POST /invocations, GET /ping, /health, /version.

    They read ``app.state.servable`` (a PyfuncModel), ``app.state.ready`` and ``app.state.call``
    (an async callable ``call(fn, *args)`` that runs ``fn`` in a thread with the app's timeouts
    and concurrency limits; its errors other than input errors propagate to the app).
    """
    from starlette.responses import Response
    from starlette.routing import Route

    async def invocations(request: Request) -> Response:
        servable = getattr(request.app.state, "servable", None)
        if not hasattr(servable, "predict_payload"):
            body = {
                "error_code": "RESOURCE_DOES_NOT_EXIST",
                "message": "this deployment serves an Azure ML scoring script: POST /score instead",
            }
            return Response(_json_bytes(body), status_code=404, media_type=CONTENT_TYPE_JSON)
        payload = await request.body()
        content_type = request.headers.get("content-type")
        try:
            _media_type(content_type)  # 415 before taking a worker slot
            predictions = await request.app.state.call(servable.predict_payload, payload, content_type)
        except ScoringInputError as exc:
            return Response(
                _json_bytes(error_body(exc)),
                status_code=invocations_status(exc),
                media_type=CONTENT_TYPE_JSON,
            )
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
        Route("/health", ping, methods=["GET"]),
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
