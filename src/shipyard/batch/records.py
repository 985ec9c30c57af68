"""Batch jobs in the workspace's store (``shipyard_batch_jobs``): one row per `batch_score` run.

The row is written as ``running`` before the first mini-batch is read and updated when the job
ends (succeeded, or failed with the reason), so a job that was killed outright stays visible as
``running`` with its start time. The summary JSON written beside the output is stored whole; the
columns repeat the figures a listing needs.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from shipyard.batch.result import BatchResult
from shipyard.errors import NotFoundError, UsageError
from shipyard.store import utcnow
from shipyard.store.models import BatchJobRow

SHOWN_ID = 12  # characters of the id that `batch-jobs list` shows and `show` accepts (6 at least)


def start_job(ws: Any, result: BatchResult, compute: str | None) -> str:
    """Record a job that is starting; returns its id."""
    job_id = uuid.uuid4().hex
    row = BatchJobRow(
        id=job_id,
        status="running",
        model_name=result.model_name,
        model_version=result.model_version,
        backend=result.backend,
        compute=compute,
        input=result.input,
        summary={**result.to_dict(), "status": "running", "job_id": job_id},
        created_at=utcnow(),
    )
    with ws.store.session() as s:
        s.add(row)
    return job_id


def finish_job(ws: Any, job_id: str, summary: dict[str, Any]) -> None:
    """Record how the job ended: `summary` is what was written beside the output (plus `error`
    when the job stopped on an exception rather than on its threshold)."""
    with ws.store.session() as s:
        row = s.get(BatchJobRow, job_id)
        if row is None:  # removed meanwhile (a workspace reset): nothing to update
            return
        row.status = summary["status"]
        row.backend = summary.get("backend", row.backend)
        row.output = summary.get("output")
        row.rows = summary.get("rows")
        row.rows_scored = summary.get("rows_scored")
        row.failed_batches = summary.get("failed_mini_batches")
        row.duration_s = summary.get("duration_s")
        row.summary = summary
        row.finished_at = utcnow()


def _to_dict(row: BatchJobRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "model_name": row.model_name,
        "model_version": row.model_version,
        "backend": row.backend,
        "compute": row.compute,
        "input": row.input,
        "output": row.output,
        "rows": row.rows,
        "rows_scored": row.rows_scored,
        "failed_batches": row.failed_batches,
        "duration_s": row.duration_s,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "summary": row.summary,
    }


def list_jobs(ws: Any, model_name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Recorded batch jobs, newest first."""
    with ws.store.session() as s:
        q = select(BatchJobRow).order_by(BatchJobRow.created_at.desc()).limit(limit)
        if model_name:
            q = q.where(BatchJobRow.model_name == model_name)
        return [_to_dict(r) for r in s.scalars(q)]


def get_job(ws: Any, job_id: str) -> dict[str, Any]:
    """A job by its id, or by its first characters (6 or more) as `batch-jobs list` shows them."""
    with ws.store.session() as s:
        if len(job_id) >= 6:
            rows = list(s.scalars(select(BatchJobRow).where(BatchJobRow.id.startswith(job_id)).limit(2)))
        else:
            rows = [r for r in [s.get(BatchJobRow, job_id)] if r is not None]
        if len(rows) > 1:
            raise UsageError(f"batch job id {job_id!r} is ambiguous: give more of it")
        if not rows:
            raise NotFoundError(f"no batch job {job_id!r} in this workspace (see `shipyard batch-jobs list`)")
        return _to_dict(rows[0])
