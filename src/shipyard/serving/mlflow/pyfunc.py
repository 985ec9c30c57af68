"""The MLflow pyfunc contract: a bundle without an entry script serves the MLflow model itself.

``PyfuncModel`` loads ``<bundle>/<manifest model_dir>`` with ``mlflow.pyfunc.load_model`` and
implements the ``Servable`` protocol. Its request bodies are MLflow's scoring payloads, parsed as
MLflow's scoring server parses them (``payloads``); ``routes`` serves it at MLflow's
routes (``POST /invocations``, ``GET /ping``, ...), so that clients moving to Shipyard change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.serving.bounds import ParseBounds
from shipyard.serving.manifest import BundleError, ManifestModel, add_code_path, read_manifest
from shipyard.serving.mlflow.payloads import (
    CONTENT_TYPE_JSON,
    INPUTS,
    ParsedInput,
    PayloadParser,
    PyfuncSchemaError,
    schema_error_from_mlflow,
)
from shipyard.serving.servable import check_predictions
from shipyard.serving.user_errors import INPUT_ERRORS, describe, log_rejected
from shipyard.serving.validation import parse_signature

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from mlflow.types import Schema

FLAVOR = "pyfunc"

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
# Outputs may be text (a classifier's labels); inputs of strings are not a tensor the V2 routes check.
_V2_OUTPUT_BY_COLUMN = {**_V2_BY_COLUMN, "string": "BYTES"}


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


@dataclass
class PyfuncModel(ManifestModel):
    """A bundle's MLflow model, loaded with ``mlflow.pyfunc.load_model``, ready to score."""

    bundle_dir: Path
    manifest: dict[str, Any]
    model: PyFuncModel
    schema: Schema | None = None
    _columns: list[str] | None = field(default=None, repr=False)

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

        add_code_path(bundle_dir, manifest)  # a PythonModel's own classes unpickle from there
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
                shape = list(spec.shape)  # type: ignore[union-attr]  # a tensor-based schema's: TensorSpec
                return {"name": spec.name or INPUTS, "datatype": datatype, "shape": shape}
            types = [str(getattr(col.type, "name", col.type)) for col in schema.inputs]
            if not types or any(t not in _V2_BY_COLUMN for t in types):
                return None
            datatype = _V2_BY_COLUMN[types[0]] if len(set(types)) == 1 else "FP64"
            return {"name": INPUTS, "datatype": datatype, "shape": [-1, len(types)]}
        checks = parse_signature(self.manifest.get("signature"))
        return checks[0].tensor_spec() if checks else None

    def output_spec(self) -> dict[str, Any] | None:
        """The output of the MLflow signature as {"datatype", "shape"}: its single tensor, or its
        columns (shape [-1] for one, [-1, K] for K of one type, FP64 for K numeric ones of mixed
        types); None without an output schema, or for one that is not a tensor."""
        metadata = self.model.metadata
        schema = metadata.get_output_schema() if metadata is not None else None
        if schema is None or not schema.inputs:
            return None
        if schema.is_tensor_spec():
            if len(schema.inputs) != 1:
                return None
            spec = schema.inputs[0]
            datatype = _V2_BY_NUMPY.get(str(spec.type), "BYTES")
            return {"datatype": datatype, "shape": list(spec.shape)}
        types = [str(getattr(col.type, "name", col.type)) for col in schema.inputs]
        if any(t not in _V2_OUTPUT_BY_COLUMN for t in types):
            return None
        datatypes = {_V2_OUTPUT_BY_COLUMN[t] for t in types}
        if len(datatypes) == 1:
            datatype = datatypes.pop()
        elif "BYTES" in datatypes or "BOOL" in datatypes:
            return None
        else:
            datatype = "FP64"
        return {"datatype": datatype, "shape": [-1] if len(types) == 1 else [-1, len(types)]}

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        """Score rows (lists of values); one prediction per row, in order.

        With a column-based signature the rows become a DataFrame with its column names (in the
        signature's order); otherwise a numpy array (of the tensor's dtype when there is one).
        """
        if not isinstance(rows, list) or not rows:
            raise PyfuncSchemaError("rows: expected a non-empty list of rows", "rows")
        data = self._parser().rows_to_input(rows, where="rows")
        predictions = self._predict(data, None)
        return check_predictions(rows, to_jsonable(predictions))

    # -- /invocations --------------------------------------------------------------------------
    def parse_payload(
        self,
        payload: dict[str, Any] | bytes | str,
        content_type: str | None,
        bounds: ParseBounds | None = None,
    ) -> ParsedInput:
        """Parse a request body (or an already decoded JSON object) as MLflow's scoring server does;
        with `bounds`, a JSON table wider than their max_columns is refused (413) before pandas."""
        return self._parser(bounds).parse(payload, content_type)

    def predict_payload(
        self,
        payload: dict[str, Any] | bytes | str,
        content_type: str | None = CONTENT_TYPE_JSON,
        bounds: ParseBounds | None = None,
    ) -> Any:
        """Parse a body as MLflow's ``/invocations`` does, predict, and return JSON-ready predictions.

        Raises PyfuncBodyError (unparseable or ambiguous body), PyfuncSchemaError (does not match
        the signature; ``field`` names the column) or UnsupportedContentTypeError; errors of the
        model itself propagate unchanged.
        """
        parsed = self.parse_payload(payload, content_type, bounds)
        predictions = self._predict(parsed.data, parsed.params)
        return to_jsonable(predictions)

    def _parser(self, bounds: ParseBounds | None = None) -> PayloadParser:
        return PayloadParser(self.schema, self._columns, self._from_type_hints(), bounds)

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
                raise schema_error_from_mlflow(exc) from None
            if exc.get_http_status_code() == 400:
                raise PyfuncSchemaError(message, None, error_code=exc.error_code) from None
            raise
        except INPUT_ERRORS as exc:
            # The model refused the values it was given (a null or NaN cell, a string): the
            # caller's input, a 4xx; any other exception is a 500 (see user_errors).
            log_rejected("predict()", exc)
            raise PyfuncSchemaError(
                f"the model cannot score this input: {describe(exc)}", None, error_code="BAD_REQUEST"
            ) from None
