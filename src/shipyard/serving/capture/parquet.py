"""Parquet files for data capture (`capture.format: parquet`), the columnar twin of the JSONL files.

One row per captured request: ``timestamp`` (timestamp[us, UTC]), ``request_id`` (string), and
``inputs`` / ``outputs`` as JSON text (string columns): request payloads have no fixed schema
(rows, records, V2 tensors), so the JSON stays as it was and readers parse what they need (pandas,
DuckDB `json` functions, Spark `from_json`). Each batch the writer thread takes off the queue is
one row group. A Parquet file is readable once its footer is written: at rotation (past
`max_file_mb`) and when the server stops; a server that is killed leaves its current file
unreadable, where JSONL would keep every line written — the trade-off for a smaller, typed file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("request_id", pa.string()),
        ("inputs", pa.string()),
        ("outputs", pa.string()),
    ]
)


class ParquetFile:
    """An open capture file that takes batches of (timestamp, request id, inputs, outputs JSON)."""

    def __init__(self, path: Path) -> None:
        # "x": never clobber another writer's file (as the JSONL files).
        self._raw = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._writer = pq.ParquetWriter(self._raw, SCHEMA, compression="zstd")

    def write(self, rows: list[tuple[str, str, bytes, bytes]]) -> int:
        """Append one row group; returns the bytes the file grew by (compressed, approximate
        until the footer)."""
        before = self._raw.tell()
        table = pa.table(
            [
                pa.array([datetime.fromisoformat(r[0]) for r in rows], SCHEMA.field("timestamp").type),
                pa.array([r[1] for r in rows], pa.string()),
                pa.array([r[2].decode() for r in rows], pa.string()),
                pa.array([r[3].decode() for r in rows], pa.string()),
            ],
            schema=SCHEMA,
        )
        self._writer.write_table(table)
        return self._raw.tell() - before

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        try:
            self._writer.close()  # writes the footer
        finally:
            self._raw.close()
