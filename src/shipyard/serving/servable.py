"""What every served model offers, whatever its contract (Azure ML score.py, MLflow pyfunc).

The protocol routes each have their own payloads (`/score` passes the raw body to run();
`/invocations` takes MLflow's payloads; `/v2/.../infer` takes typed tensors), but underneath they
score *rows*: `predict_rows` takes a list of input rows and returns exactly one prediction per
row. Micro-batching stacks the rows of concurrent requests into one such call.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class PredictionShapeError(ValueError):
    """The model returned a number of predictions that does not match the rows it was given."""


@runtime_checkable
class Servable(Protocol):
    @property
    def model_name(self) -> str | None: ...

    @property
    def model_version(self) -> str | None: ...

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        """Score a batch of rows; one prediction per row, in order."""
        ...

    def input_spec(self) -> dict[str, Any] | None:
        """The input tensor, e.g. {"name": "data", "datatype": "FP64", "shape": [-1, 10]}."""
        ...

    def output_spec(self) -> dict[str, Any] | None:
        """The output the model declares (its signature), e.g. {"datatype": "FP32", "shape": [-1]},
        or None: the V2 routes then describe and send one FP64 per row."""
        ...


def check_predictions(rows: list[Any], predictions: Any) -> list[Any]:
    """Predictions as a list with one entry per row, or PredictionShapeError."""
    if hasattr(predictions, "tolist"):
        predictions = predictions.tolist()
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise PredictionShapeError(f"the model returned {got} predictions for {len(rows)} rows")
    return predictions
