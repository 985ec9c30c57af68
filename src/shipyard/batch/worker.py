"""What runs in a worker: load the bundle once, then score mini-batches with its own contract.

The loader is the serving one (``load_servable``): a ``score.py`` gets the rows as
``{"data": rows}`` through its run(), an MLflow model gets them through ``predict``, exactly as
the scoring server would. Results go back as plain tuples, not exceptions, so that an error
from inside a user's model (whose class may not unpickle in the parent) is reported as text.
"""

from __future__ import annotations

import traceback
from typing import Any

from shipyard.batch.source import table_rows

OK, FAILED, LOAD_FAILED = "ok", "failed", "load_failed"

_servable: Any = None
_load_error: str | None = None


def init(bundle_dir: str) -> None:
    """Pool initializer: load the bundle once per process; a failure is kept and reported."""
    global _servable, _load_error
    from shipyard.serving.loader import load_servable

    try:
        _servable = load_servable(bundle_dir)
    except Exception as exc:  # reported for the first mini-batch, which stops the job
        _load_error = f"{type(exc).__name__}: {exc}"


def model_columns(servable: Any, names: list[str], key: str | None) -> list[str]:
    """The columns that go to the model, in the order it expects.

    An MLflow model with a column signature takes its columns by name (in the signature's order);
    anything else gets every input column but the key, in the file's order.
    """
    features = [n for n in names if n != key]
    wanted = getattr(servable, "_columns", None)  # PyfuncModel's signature columns, if any
    if wanted and set(wanted) <= set(features):
        return list(wanted)
    return features


def score(table: Any, key: str | None) -> tuple[str, Any]:
    """(OK, predictions) with one prediction per row, (FAILED, message) or (LOAD_FAILED, message)."""
    if _servable is None:
        return LOAD_FAILED, _load_error or "the bundle was not loaded"
    try:
        columns = model_columns(_servable, table.column_names, key)
        return OK, _servable.predict_rows(table_rows(table, columns))
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return FAILED, f"{type(exc).__name__}: {exc}{where}"
