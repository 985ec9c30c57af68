"""`batch_score`: stream the input, score it on a backend, write predictions and a summary.

Order: by default the output keeps the input's row order. Workers finish out of order, so
outcomes wait in a buffer until every earlier mini-batch has been written (or has failed); the
buffer holds at most the mini-batches in flight. With ``key`` the order does not matter: each
mini-batch is written as it finishes, as the key column and the prediction.

Failures: a mini-batch whose scoring raised is recorded (index, row range, message) and its
rows are left out. Beyond the threshold the job stops, removes the partial file, writes the
summary with ``status: failed`` and raises BatchFailed; under it, the rest is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.batch import records
from shipyard.batch.backends.base import Backend, Outcome
from shipyard.batch.backends.local import LocalProcesses
from shipyard.batch.remote import Staging
from shipyard.batch.result import BatchResult, FailedBatch, Threshold, parse_threshold
from shipyard.batch.sink import PredictionWriter, output_paths, prediction_column
from shipyard.batch.source import count_rows, mini_batches
from shipyard.data.hashing import file_sha256
from shipyard.errors import NotFoundError, ShipyardError, UsageError

Progress = Callable[[int, int, int | None], None]  # (rows done, mini-batches done, total rows)
FAILURES_IN_MESSAGE = 5


class BatchFailed(ShipyardError):
    """More mini-batches failed than the threshold allows; no predictions file was written."""

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result


def _bundle_dir(bundle: Any) -> Path:
    """A Bundle (packaging) or the path of a bundle folder."""
    path = Path(getattr(bundle, "path", bundle))
    if not (path / "manifest.json").is_file():
        raise NotFoundError(f"bundle {path}: no manifest.json there (build it with `shipyard package`)")
    return path


def _check_key(path: Path, key: str | None) -> None:
    if key is None:
        return
    first = next(iter(mini_batches(path, 1)), None)
    if first is not None and key not in first.table.column_names:
        raise UsageError(
            f"--key {key!r}: no such column in {path}; columns: {', '.join(first.table.column_names)}"
        )


def _describe(failed: list[FailedBatch]) -> str:
    shown = [f"#{f.index} (rows {f.first_row}-{f.end_row - 1}): {f.error}" for f in failed]
    more = len(shown) - FAILURES_IN_MESSAGE
    return "; ".join(shown[:FAILURES_IN_MESSAGE]) + (f"; and {more} more" if more > 0 else "")


class _Job:
    """The state of one run: the writer, the order buffer and the failures."""

    def __init__(self, writer: PredictionWriter, key: str | None, threshold: Threshold, total: int | None):
        self.writer, self.key, self.threshold = writer, key, threshold
        self.total_batches = total
        self.buffer: dict[int, Outcome] = {}
        self.next_index = 0
        self.failed: list[FailedBatch] = []
        self.rows = self.scored = self.batches = 0

    def take(self, outcome: Outcome) -> None:
        self.batches += 1
        self.rows += outcome.batch.table.num_rows
        if outcome.error is not None:
            b = outcome.batch
            self.failed.append(FailedBatch(b.index, b.first_row, b.end_row, outcome.error))
            if self.threshold.exceeded(len(self.failed), self.total_batches):
                raise _OverThreshold
        if self.key is not None:
            self._write(outcome)
            return
        self.buffer[outcome.batch.index] = outcome
        while self.next_index in self.buffer:
            self._write(self.buffer.pop(self.next_index))
            self.next_index += 1

    def _write(self, outcome: Outcome) -> None:
        if outcome.predictions is None:
            return
        table = outcome.batch.table
        if self.key is not None:
            table = table.select([self.key])
        name = prediction_column(table.column_names)
        table = table.append_column(name, self.writer.predictions(outcome.predictions))
        self.writer.write(table, outcome.batch.index)
        self.scored += table.num_rows


class _OverThreshold(Exception):
    pass


def batch_score(
    ws: Any,
    bundle: Any,
    input_path: str | Path,
    output_path: str | Path,
    *,
    mini_batch_rows: int = 10_000,
    workers: int | None = os.cpu_count(),
    error_threshold: int | str | Threshold = 0,
    key: str | None = None,
    backend: Backend | None = None,
    compute: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every row of `input_path` (CSV or Parquet) with `bundle`; write the predictions.

    `output_path` is a folder (→ ``predictions-<UTC stamp>.parquet`` in it) or a file name ending
    in .parquet/.csv (→ ``<stem>-<stamp><ext>``); the summary goes beside it as ``.json``.
    `backend` runs the workers (default: `workers` local processes); `compute` is the name of the
    compute target it stands for, recorded with the job. `ws` is the workspace the job is recorded
    in (``shipyard_batch_jobs``); None records nothing. Raises BatchFailed when more than
    `error_threshold` mini-batches (a count, or "N%") fail.

    Either may be a URI (``s3://bucket/key``): the input is downloaded once, the output written
    to a temporary folder and uploaded only when the job succeeded (remote.py); the job records
    the URIs.
    """
    with Staging(input_path, output_path) as staged:
        return _batch_score(
            ws,
            bundle,
            staged,
            mini_batch_rows=mini_batch_rows,
            workers=workers,
            error_threshold=error_threshold,
            key=key,
            backend=backend,
            compute=compute,
            progress=progress,
        )


def _batch_score(
    ws: Any,
    bundle: Any,
    staged: Staging,
    *,
    mini_batch_rows: int,
    workers: int | None,
    error_threshold: int | str | Threshold,
    key: str | None,
    backend: Backend | None,
    compute: str | None,
    progress: Progress | None,
) -> BatchResult:
    bundle_dir = _bundle_dir(bundle)
    source = staged.fetch_input()
    threshold = parse_threshold(error_threshold)
    backend = backend or LocalProcesses(workers)
    _check_key(source, key)
    started = datetime.now(UTC)
    target, summary_path = output_paths(staged.output, started)
    staged.check_output(summary_path)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    total_rows = count_rows(source)
    result = BatchResult(
        status="failed",
        model_name=manifest.get("model_name"),
        model_version=None if manifest.get("model_version") is None else str(manifest["model_version"]),
        bundle=str(bundle_dir),
        input=staged.input_name,
        input_sha256=file_sha256(source) if source.is_file() else "",
        output=None,
        summary_path=staged.name(summary_path),
        backend=backend.name,
        workers=backend.workers,
        mini_batch_rows=mini_batch_rows,
        error_threshold=str(threshold),
        keep_order=key is None,
        key=key,
        started_at=started.isoformat(),
        compute=compute,
    )
    if ws is not None:
        result.job_id = records.start_job(ws, result, compute)
    try:
        _run(result, backend, bundle_dir, source, target, summary_path, total_rows, progress, staged)
        staged.upload(target if result.output else None, summary_path)
    except BatchFailed:
        _record(ws, result)
        raise
    except BaseException as exc:
        _record(ws, result, error=str(exc) or type(exc).__name__)
        raise
    _record(ws, result)
    return result


def _run(
    result: BatchResult,
    backend: Backend,
    bundle_dir: Path,
    source: Path,
    target: Path,
    summary_path: Path,
    total_rows: int | None,
    progress: Progress | None,
    staged: Staging,
) -> None:
    """Score, write and summarise; fills `result` (raises BatchFailed over the threshold)."""
    threshold = parse_threshold(result.error_threshold)
    rows = result.mini_batch_rows
    total_batches = None if total_rows is None else -(-total_rows // rows)
    writer = PredictionWriter(target)
    job = _Job(writer, result.key, threshold, total_batches)
    t0 = time.perf_counter()
    outcomes = backend.score(bundle_dir, mini_batches(source, rows), result.key)
    try:
        for outcome in outcomes:
            job.take(outcome)
            if progress is not None:
                progress(job.rows, job.batches, total_rows)
        over = threshold.exceeded(len(job.failed), job.batches)
    except _OverThreshold:
        over = True
    except BaseException:
        writer.abort()
        raise
    finally:
        outcomes.close()  # type: ignore[attr-defined]
        result.workers = backend.workers  # a Ray backend knows its pool's size once connected
    result.duration_s = round(time.perf_counter() - t0, 3)
    result.rows, result.rows_scored, result.mini_batches = job.rows, job.scored, job.batches
    result.failed = sorted(job.failed, key=lambda f: f.index)
    if over:
        writer.abort()
        where = staged.failed_summary(result)
        _write_summary(result, summary_path)
        raise BatchFailed(
            f"batch scoring failed: {len(job.failed)} mini-batch(es) failed, over the threshold of "
            f"{threshold} (--error-threshold); no predictions written. Failed: {_describe(result.failed)}. "
            f"Summary: {where}",
            result,
        )
    result.output = staged.name(target) if writer.commit() else None
    result.status = "succeeded"
    _write_summary(result, summary_path)


def _record(ws: Any, result: BatchResult, error: str | None = None) -> None:
    """Update the job's row (nothing without a workspace). An exception that stopped the job is
    kept in the record's summary; the summary file is not written for it (no figures to give)."""
    if ws is None or result.job_id is None:
        return
    summary = result.to_dict()
    if error is not None:
        summary.update(status="failed", error=error)
    records.finish_job(ws, result.job_id, summary)


def _write_summary(result: BatchResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
