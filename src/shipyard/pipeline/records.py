"""Pipeline runs and step states in Shipyard's store; the step cache is read from them.

A cache hit is the latest *succeeded* step run with the same step name and cache key: there is
no separate cache table to drift out of step with the history.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import case, select

from shipyard.errors import NotFoundError
from shipyard.ownership import host_id
from shipyard.pipeline.outputs import RegisteredModel
from shipyard.processes import process_start
from shipyard.store import utcnow
from shipyard.store.models import PipelineRun, StepRun
from shipyard.workspace import Workspace


def create_pipeline_run(ws: Workspace, project: str, parameters: dict[str, Any], steps: list[str]) -> str:
    run_id = uuid.uuid4().hex
    with ws.store.session() as s:
        s.add(
            PipelineRun(
                id=run_id,
                project=project,
                status="running",
                started_at=utcnow(),
                parameters=parameters,
                summary={},
                # Who runs it: a run whose runner is gone was interrupted (pipeline/recovery.py).
                runner_host=host_id(),
                runner_pid=os.getpid(),
                runner_start=process_start(os.getpid()),
            )
        )
        for step in steps:
            s.add(StepRun(pipeline_run_id=run_id, step=step, status="pending", outputs={}))
    return run_id


def update_step(ws: Workspace, run_id: str, step: str, **fields: Any) -> None:
    with ws.store.session() as s:
        row = s.scalars(select(StepRun).where(StepRun.pipeline_run_id == run_id, StepRun.step == step)).one()
        for key, value in fields.items():
            setattr(row, key, value)


def finish_pipeline_run(
    ws: Workspace, run_id: str, status: str, summary: dict, error: str | None = None
) -> None:
    with ws.store.session() as s:
        row = s.get(PipelineRun, run_id)
        assert row is not None  # start_pipeline_run recorded it
        row.status = status
        row.finished_at = utcnow()
        row.summary = summary
        row.error = error


def mark_interrupted(ws: Workspace, run_id: str, reason: str) -> list[str]:
    """A running pipeline run whose runner died: `killed`, its running step failed and the steps
    it never reached skipped, with `reason`. Returns the steps that were left running (empty, and
    nothing changed, when the run is no longer `running`: someone else finished it)."""
    with ws.store.session() as s:
        row = s.get(PipelineRun, run_id)
        if row is None or row.status != "running":
            return []
        row.status, row.finished_at, row.error = "killed", utcnow(), reason
        row.summary = {**(row.summary or {}), "status": "killed"}
        interrupted = []
        for step in s.scalars(select(StepRun).where(StepRun.pipeline_run_id == run_id)):
            if step.status == "running":
                step.status, step.finished_at, step.message = "failed", utcnow(), f"interrupted: {reason}"
                interrupted.append(step.step)
            elif step.status == "pending":
                step.status, step.message = "skipped", "not reached: the run was interrupted"
        return interrupted


def set_mlflow_run(ws: Workspace, run_id: str, mlflow_run_id: str) -> None:
    with ws.store.session() as s:
        row = s.get(PipelineRun, run_id)
        assert row is not None  # start_pipeline_run recorded it
        row.mlflow_run_id = mlflow_run_id


def cache_hits(ws: Workspace, step: str, cache_key: str, limit: int = 5) -> list[tuple[dict[str, Any], str]]:
    """Outputs and pipeline run id of succeeded runs of `step` with `cache_key`, best first.

    Best is a step from a pipeline run that went all the way (succeeded), then the newest: a
    `--no-cache` retrain that the gate rejected as a tie must not displace the run that is in
    production.
    """
    with ws.store.session() as s:
        rows = s.execute(
            select(StepRun.outputs, StepRun.pipeline_run_id)
            .join(PipelineRun, PipelineRun.id == StepRun.pipeline_run_id)
            .where(StepRun.step == step, StepRun.cache_key == cache_key, StepRun.status == "succeeded")
            .order_by(case((PipelineRun.status == "succeeded", 0), else_=1), StepRun.id.desc())
            .limit(limit)
        ).all()
        return [(dict(outputs), run_id) for outputs, run_id in rows]


def registered_version(ws: Workspace, model_name: str, run_id: str) -> str | None:
    """The version a pipeline registered from `run_id` under `model_name`, from step records."""
    with ws.store.session() as s:
        rows = s.scalars(
            select(StepRun.outputs).where(StepRun.step == "register", StepRun.status == "succeeded")
        )
        for outputs in rows:
            registered = RegisteredModel.from_dict(outputs)
            if registered.model_name == model_name and registered.run_id == run_id:
                return registered.version
    return None


def _step_dict(r: StepRun) -> dict[str, Any]:
    return {
        "step": r.step,
        "status": r.status,
        "duration_s": round(r.duration_s, 3) if r.duration_s is not None else None,
        "cache_key": r.cache_key,
        "message": r.message,
        "outputs": r.outputs,
    }


def get_pipeline_run(ws: Workspace, run_id: str) -> dict[str, Any]:
    with ws.store.session() as s:
        matches = list(s.scalars(select(PipelineRun).where(PipelineRun.id.startswith(run_id)).limit(2)))
        if len(matches) != 1:
            raise NotFoundError(f"no single pipeline run matches {run_id!r}; see `shipyard runs list`")
        run = matches[0]
        steps = s.scalars(select(StepRun).where(StepRun.pipeline_run_id == run.id).order_by(StepRun.id))
        return {
            "id": run.id,
            "project": run.project,
            "status": run.status,
            "started_at": run.started_at.isoformat(timespec="seconds"),
            "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
            "parameters": run.parameters,
            "mlflow_run_id": run.mlflow_run_id,
            "error": run.error,
            "steps": [_step_dict(r) for r in steps],
        }


def step_files(ws: Workspace, run_id: str, step: str = "train") -> Path:
    """A local folder with a step's log and outputs: the workspace's own folders on a file://
    store, else this machine's cached copy of what the step stored (steps.store_step_files)."""
    run = get_pipeline_run(ws, run_id)
    found = next((s for s in run["steps"] if s["step"] == step), None)
    if found is None:
        steps = ", ".join(s["step"] for s in run["steps"])
        raise NotFoundError(f"pipeline run {run['id'][:8]} has no step {step!r}; its steps: {steps}")
    outputs = found["outputs"] or {}
    if outputs.get("files_uri") and outputs.get("files_hash"):
        prefix = ws.artifact_key(outputs["files_uri"])
        return ws.artifact_cache.fetch_dir(ws.artifacts, prefix, outputs["files_hash"])
    local = ws.root / "outputs" / run["id"] / step
    if ws.local_artifacts and local.is_dir():
        return local
    raise NotFoundError(
        f"step {step} of pipeline run {run['id'][:8]} stored no files (cached from another run: see that "
        "run's step, named in `shipyard runs show`)"
    )


def list_pipeline_runs(ws: Workspace, limit: int = 20) -> list[dict[str, Any]]:
    with ws.store.session() as s:
        runs = s.scalars(select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit))
        return [
            {
                "id": r.id,
                "project": r.project,
                "status": r.status,
                "started_at": r.started_at.isoformat(timespec="seconds"),
                "duration_s": round((r.finished_at - r.started_at).total_seconds(), 2)
                if r.finished_at
                else None,
            }
            for r in runs
        ]
