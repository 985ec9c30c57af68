"""The output of a batch job: one file, written under a temporary name and renamed at the end.

Readers never see a half-written file under the final name, and a job that fails (too many
failed mini-batches, a crash) leaves no predictions file at all: the temporary one is removed.
The file's format follows its extension (.parquet or .csv); predictions that are not scalars
(lists, dicts) are written as JSON text in CSV, as nested columns in Parquet.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.batch.source import FORMATS
from shipyard.errors import ShipyardError, UsageError

PREDICTION = "prediction"


def output_paths(output: Path, started: datetime) -> tuple[Path, Path]:
    """(predictions file, summary JSON) for `output`: a folder (Parquet inside) or a file name
    whose extension says the format; either way the name gets the job's UTC time stamp."""
    stamp = started.strftime("%Y%m%dT%H%M%S%fZ")
    if output.suffix.lower() in FORMATS:
        target = output.with_name(f"{output.stem}-{stamp}{output.suffix}")
    elif output.suffix:
        raise UsageError(f"--output {output}: use a folder, or a file name ending in .parquet or .csv")
    else:
        target = output / f"predictions-{stamp}.parquet"
    return target, target.with_suffix(".json")


def prediction_column(names: list[str]) -> str:
    """ "prediction", or "prediction_1", ... when the input already has such a column."""
    name, n = PREDICTION, 0
    while name in names:
        n += 1
        name = f"{PREDICTION}_{n}"
    return name


class PredictionWriter:
    """Append tables of rows + predictions to a temporary file; `commit` renames it into place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.format = FORMATS[path.suffix.lower()]
        self._writer: Any = None
        self._schema: Any = None

    def predictions(self, values: list[Any]) -> Any:
        """The predictions as a pyarrow array the file format can hold."""
        import pyarrow as pa

        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep every value as JSON text
            return pa.array([json.dumps(v, default=str) for v in values])
        nested = pa.types.is_nested(array.type)
        if nested and self.format == "csv":
            return pa.array([json.dumps(v, default=str) for v in values])
        return array

    def write(self, table: Any, index: int) -> None:
        import pyarrow as pa

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._schema = table.schema
            self._writer = self._open(table.schema)
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise ShipyardError(
                    f"mini-batch {index}: its columns or predictions ({table.schema.types}) do not "
                    f"match the earlier ones ({self._schema.types}): {exc}"
                ) from None
        self._writer.write_table(table)

    def _open(self, schema: Any) -> Any:
        if self.format == "csv":
            import pyarrow.csv as pcsv

            return pcsv.CSVWriter(str(self.partial), schema)
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(self.partial), schema)

    def commit(self) -> bool:
        """Close and rename into place; False when nothing was written (no file is made)."""
        if self._writer is None:
            return False
        self._writer.close()
        self.partial.replace(self.path)
        return True

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the file is removed anyway
                pass
        self.partial.unlink(missing_ok=True)
