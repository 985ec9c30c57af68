"""Run the pipeline: pick the steps, reuse cached outputs, record every state, stop on failure.

Concurrent pipelines (on one machine or many) need no lock around the gate: the register step
moves production by a compare-and-set from the champion evaluate compared against, and decides
again when it lost a race (gate/promotion.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from shipyard.config.models import ProjectConfig
from shipyard.config.overlay import root_project
from shipyard.errors import ShipyardError, StoreUnavailable, UsageError
from shipyard.gate.policy import GateDecision
from shipyard.names import shown
from shipyard.pipeline import records
from shipyard.pipeline.announce import announce
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.outputs import RegisteredModel, StepOutput
from shipyard.pipeline.recovery import recover
from shipyard.pipeline.secret_scan import scan_step
from shipyard.pipeline.steps import ALL_STEPS, Step
from shipyard.store import utcnow
from shipyard.workspace import Workspace


class Reporter(Protocol):
    def step_started(self, step: str) -> None: ...

    def step_finished(self, step: str, status: str, duration_s: float, message: str | None) -> None: ...


class SilentReporter:
    def step_started(self, step: str) -> None:
        pass

    def step_finished(self, step: str, status: str, duration_s: float, message: str | None) -> None:
        pass


@dataclass
class PipelineResult:
    pipeline_run_id: str
    status: str  # succeeded | rejected | failed
    steps: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, StepOutput] = field(default_factory=dict)  # step name → its output record
    error: str | None = None
    new_keys: dict[str, str] | None = None  # plain endpoint keys created by this run (shown once)
    planned: list[str] = field(default_factory=list)  # the steps of this run (--until cuts the rest)
    # What interrupted runs had left behind, repaired before this one started (pipeline/recovery.py).
    recovered: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gate(self) -> GateDecision | None:
        """The gate's final decision: the register step's when it decided again after production
        moved under it, else the evaluate step's."""
        register = self.outputs.get("register")
        if isinstance(register, RegisteredModel):
            return register.gate
        evaluate = self.outputs.get("evaluate")
        return evaluate if isinstance(evaluate, GateDecision) else None


def select_steps(config: ProjectConfig, until: str | None = None) -> list[Step]:
    """The steps this project has: data_check only with a data_check section; package, deploy and
    smoke_test only with a deployment; none after `until`."""
    steps = []
    for cls in ALL_STEPS:
        if cls.name == "data_check" and config.data_check is None:
            continue
        if cls.name in ("package", "deploy", "smoke_test") and config.deployment is None:
            continue
        steps.append(cls())
    names = [s.name for s in steps]
    if until is not None:
        if until not in names:
            raise UsageError(f"--until {shown(until)}: this pipeline's steps are {', '.join(names)}")
        steps = steps[: names.index(until) + 1]
    return steps


def run_pipeline(
    ws: Workspace,
    config: ProjectConfig,
    *,
    params: dict[str, Any] | None = None,
    no_cache: bool = False,
    from_step: str | None = None,
    until_step: str | None = None,
    reporter: Reporter | None = None,
) -> PipelineResult:
    """Run the project's pipeline in `ws` (up to `until_step`). Never raises for a step failure:
    the result says."""
    reporter = reporter or SilentReporter()
    config = root_project(config)  # with environments: deploys into the first one
    steps = select_steps(config, until_step)
    names = [s.name for s in steps]
    if from_step is not None and from_step not in names:
        raise UsageError(f"--from {shown(from_step)}: this pipeline's steps are {', '.join(names)}")
    merged = {**config.train.parameters, **(params or {})}
    _check_secrets(config)
    recovered = [f.to_dict() for f in recover(ws, config, report_all=False)]
    run_id = records.create_pipeline_run(ws, config.name, merged, names)
    ctx = StepContext(ws=ws, config=config, pipeline_run_id=run_id, params=merged)
    result = PipelineResult(pipeline_run_id=run_id, status="running", planned=names, recovered=recovered)
    force = no_cache
    stopped: str | None = None
    try:
        for step in steps:
            if step.name == from_step:
                force = True
            if stopped:
                _skip(ws, result, reporter, run_id, step.name, stopped)
                continue
            _run_step(ctx, step, force, result, reporter)
            gate = step.rejection(ctx.outputs[step.name])
            if gate is not None:
                stopped, result.status = f"gate rejected: {gate.reason}", "rejected"
    except ShipyardError as exc:
        result.status, result.error = "failed", str(exc)
    except KeyboardInterrupt:
        result.status, result.error = "failed", "interrupted"
        _finish(ws, ctx, result, reporter)
        raise
    if result.status == "running":
        result.status = "succeeded"
    result.outputs = ctx.outputs
    result.new_keys = ctx.secrets.get("endpoint_keys")
    _finish(ws, ctx, result, reporter)
    return result


def _check_secrets(config: ProjectConfig) -> None:
    """Every secret a step asks for resolves, before anything runs (ConfigError naming what is
    missing, never the value). The values are read again by the step and dropped here."""
    if config.train.secrets:
        from shipyard.secrets import Secrets

        Secrets(config.secrets, root=config.project_dir).env_for_step(config.train.secrets)


def _run_step(ctx: StepContext, step: Step, force: bool, result: PipelineResult, reporter: Reporter) -> None:
    ws, run_id = ctx.ws, ctx.pipeline_run_id
    started = time.perf_counter()
    reporter.step_started(step.name)
    records.update_step(ws, run_id, step.name, status="running", started_at=utcnow())
    try:
        key = step.cache_key(ctx)
        hits = [] if (force or key is None) else records.cache_hits(ws, step.name, key)
        loaded = ((step.load(data), source) for data, source in hits)
        hit = next((h for h in loaded if step.still_valid(ctx, h[0])), None)
        if hit is not None:
            output, source_run = step.reused(ctx, hit[0], hit[1]), hit[1]
            status, message = "cached", f"reused from pipeline run {source_run[:8]}"
        else:
            output = step.run(ctx)
            status, message = "succeeded", None
        stored = output.to_dict()  # the JSON the store keeps and the cache reads back
        if status == "succeeded":
            message = scan_step(ctx, step.name, stored)
    except (ShipyardError, KeyboardInterrupt, Exception) as exc:
        duration = time.perf_counter() - started
        unreachable = None if isinstance(exc, ShipyardError | KeyboardInterrupt) else ws.unreachable(exc)
        if isinstance(unreachable, StoreUnavailable):
            raise unreachable from exc  # the database is gone: nothing more can be recorded
        if unreachable is not None:
            exc = unreachable
        text = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        records.update_step(
            ws, run_id, step.name, status="failed", finished_at=utcnow(), duration_s=duration, message=text
        )
        result.steps.append({"step": step.name, "status": "failed", "duration_s": duration, "message": text})
        reporter.step_finished(step.name, "failed", duration, text)
        if isinstance(exc, ShipyardError | KeyboardInterrupt):
            raise
        raise ShipyardError(f"step {step.name} crashed: {type(exc).__name__}: {exc}") from exc
    duration = time.perf_counter() - started
    ctx.outputs[step.name] = output
    # A cached step records its own (cache) status but succeeded-like outputs for later hits.
    records.update_step(
        ws,
        run_id,
        step.name,
        status="succeeded" if status == "succeeded" else "cached",
        cache_key=key,
        outputs=stored,
        finished_at=utcnow(),
        duration_s=duration,
        message=message,
    )
    result.steps.append({"step": step.name, "status": status, "duration_s": duration, "message": message})
    reporter.step_finished(step.name, status, duration, message)


def _skip(
    ws: Workspace, result: PipelineResult, reporter: Reporter, run_id: str, step: str, why: str
) -> None:
    records.update_step(ws, run_id, step, status="skipped", message=why)
    result.steps.append({"step": step, "status": "skipped", "duration_s": 0.0, "message": why})
    reporter.step_finished(step, "skipped", 0.0, why)


def _finish(ws: Workspace, ctx: StepContext, result: PipelineResult, reporter: Reporter) -> None:
    # Steps after a failure stay visible as skipped.
    done = {s["step"] for s in result.steps}
    for name in result.planned:
        if name not in done:
            _skip(ws, result, reporter, ctx.pipeline_run_id, name, "not reached")
    summary = {"status": result.status, "steps": result.steps}
    records.finish_pipeline_run(ws, ctx.pipeline_run_id, result.status, summary, result.error)
    if ctx.parent_mlflow_run_id:
        mlflow_status = {"succeeded": "FINISHED", "rejected": "FINISHED"}.get(result.status, "FAILED")
        ctx.ws.mlflow.set_terminated(ctx.parent_mlflow_run_id, mlflow_status)
    announce(ws, ctx.config, result, ctx.outputs)
