"""The input of a batch job, streamed in mini-batches of at most N rows.

Parquet is read with ``ParquetFile.iter_batches`` and CSV with pyarrow's streaming reader
(``pyarrow.csv.open_csv``), so a file far larger than memory is never loaded at once: only the
mini-batches in flight are. Each mini-batch is a pyarrow Table (cheap to pickle to a worker)
with its index and first row number, which the failure report and the order of the output use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import NotFoundError, UsageError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CSV_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class MiniBatch:
    index: int
    first_row: int
    table: Any  # pyarrow.Table

    @property
    def end_row(self) -> int:
        return self.first_row + self.table.num_rows


def input_format(path: Path) -> str:
    """ "csv" or "parquet" from the file's extension, or UsageError naming the ones supported."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"input {path}: unsupported extension {path.suffix!r}; use .csv or .parquet")
    return fmt


def _batches(path: Path, rows: int) -> Iterator[Any]:
    import pyarrow as pa

    if input_format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            yield from pq.ParquetFile(path).iter_batches(batch_size=rows)
        except pa.ArrowInvalid as exc:
            raise UsageError(f"input {path}: cannot read it as Parquet ({exc})") from None
        return
    import pyarrow.csv as pcsv

    try:
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES))
        yield from reader
    except pa.ArrowInvalid as exc:
        # Types are inferred from the first block: a later value that does not fit names itself.
        raise UsageError(f"input {path}: cannot read it as CSV ({exc})") from None


def mini_batches(path: Path, rows: int) -> Iterator[MiniBatch]:
    """The file's rows in mini-batches of exactly `rows` rows (the last one may be shorter)."""
    import pyarrow as pa

    if rows < 1:
        raise UsageError(f"--mini-batch-rows {rows}: must be at least 1")
    if not path.is_file():
        raise NotFoundError(f"input {path} does not exist")
    pending: list[Any] = []
    count = index = first = 0
    for batch in _batches(path, rows):
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield MiniBatch(index, first, table.slice(0, rows))
            rest = table.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            count -= rows
            index += 1
            first += rows
    if count:
        yield MiniBatch(index, first, pa.Table.from_batches(pending))


def count_rows(path: Path) -> int | None:
    """The number of rows when the file says so without reading it (Parquet), else None."""
    if input_format(path) != "parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def table_rows(table: Any, columns: list[str]) -> list[list[Any]]:
    """The table's rows as lists of Python values in `columns`' order (nulls as None)."""
    values = [table.column(name).to_pylist() for name in columns]
    return [list(row) for row in zip(*values, strict=True)]
