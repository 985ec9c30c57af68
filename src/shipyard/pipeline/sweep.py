"""The train step's sweep (train.sweep): trials fanned out on the compute target, the best one the
step's output.

Runs are laid out as Azure ML's HyperDrive lays them out: the train run is the sweep's parent,
each trial a child run of it (tags `shipyard.sweep_trial`, `shipyard.step`) with its full
parameters and its metrics; the parent gets the best trial's run id as a tag, the best value as
`best_<metric>` and the trial table as `sweep.json`. The step's output record is the best trial's
record (run_id, metrics, params, model_uri: evaluate, register and package read it unchanged)
plus a `sweep` summary.

Best means: the gate's metric (`gate.metric`, `gate.direction`) among the trials that succeeded
and logged it; ties go to the lowest trial index, so the same values always pick the same trial.
A failed trial is a FAILED child run listed in the summary; only when every trial failed does the
step fail, with the first failure's log tail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import StepFailed
from shipyard.pipeline.outputs import TrainedRun
from shipyard.pipeline.training import train_job, trained_run
from shipyard.tracking.env import run_variables

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.compute.base import JobResult, StepJob
    from shipyard.pipeline.context import StepContext

_RUN_STATUS = {"succeeded": "FINISHED", "cancelled": "KILLED"}  # anything else: FAILED


@dataclass
class Trial:
    index: int
    params: dict[str, Any]  # the swept values (the run has the full set)
    log_path: Path
    run_id: str | None = None
    status: str = "PENDING"  # MLflow's run status once it ran: FINISHED | FAILED | KILLED
    metric: float | None = None
    message: str | None = None  # why it failed

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "status": self.status,
            "metric": self.metric,
            "run_id": self.run_id,
            "log_path": str(self.log_path),
            **({"message": self.message} if self.message else {}),
        }


def best_trial(trials: list[Trial], direction: str) -> Trial | None:
    """The trial with the best metric (`direction` lower or higher) among those that finished and
    logged it; ties → the lowest index. None when no trial qualifies."""
    sign = 1.0 if direction == "lower" else -1.0
    scored = [
        (sign * t.metric, t.index, t) for t in trials if t.status == "FINISHED" and t.metric is not None
    ]
    return min(scored, key=lambda s: s[:2])[2] if scored else None


def _metric(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def run_sweep(
    ctx: StepContext, parent_run_id: str, tags: dict[str, str], secret_env: dict[str, str]
) -> TrainedRun:
    """Run every trial of train.sweep under the train run `parent_run_id`; the best trial's
    output record plus `sweep` (method, trials, best). StepFailed when no trial can be best."""
    from mlflow.entities import Param

    from shipyard.compute import get_target
    from shipyard.compute.base import failure_message
    from shipyard.compute.parallel import parallel_slots, run_many
    from shipyard.tracking.importer import import_step_tracking

    t, gate, client = ctx.config.train, ctx.config.gate, ctx.ws.mlflow
    sweep = t.sweep
    assert sweep is not None
    target = get_target(t.compute, ctx.ws, ctx.config)
    experiment_id = ctx.ws.experiment_id(ctx.config.experiment_name)
    trials = [
        Trial(i, params, ctx.log_dir() / f"train-trial-{i}.log")
        for i, params in enumerate(sweep.trial_parameters())
    ]
    jobs = [
        train_job(
            ctx,
            "",  # the trial's run id is set when it starts (prepare)
            trial.log_path,
            secret_env,
            params={**ctx.params, **trial.params},
            outputs=ctx.ws.subdir("outputs", ctx.pipeline_run_id, "train", f"trial-{trial.index}"),
        )
        for trial in trials
    ]

    def prepare(i: int, job: StepJob) -> StepJob:
        # Created when its job starts, so the child run's start time is the trial's.
        trial_tags = {**tags, "mlflow.parentRunId": parent_run_id, "shipyard.sweep_trial": str(i)}
        run = client.create_run(experiment_id, run_name=f"train-trial-{i}", tags=trial_tags)
        trials[i].run_id = run.info.run_id
        params = json.loads(job.env["SHIPYARD_PARAMS"])
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])
        return dataclasses.replace(job, env={**job.env, **run_variables(run.info.run_id)})

    def finished(i: int, result: JobResult) -> None:
        trial, run_id = trials[i], trials[i].run_id
        assert run_id is not None
        trial.status = "FAILED"  # until its tracking data is in: a half-imported run is no result
        try:
            if result.succeeded:
                import_step_tracking(client, run_id, jobs[i].outputs_dir)
            else:
                trial.message = failure_message(target.name, jobs[i], result)
            trial.status = _RUN_STATUS.get(result.status, "FAILED")
        finally:
            client.set_terminated(run_id, trial.status)
        if result.succeeded:
            trial.metric = _metric(client.get_run(run_id).data.metrics.get(gate.metric))

    try:
        run_many(target, jobs, sweep.max_parallel, prepare=prepare, finished=finished)
    except BaseException:
        with contextlib.suppress(Exception):  # what ran stays visible; the error is what matters
            _record_on_parent(ctx, parent_run_id, trials, None)
        raise
    best = best_trial(trials, gate.direction)
    _record_on_parent(ctx, parent_run_id, trials, best)
    if best is None:
        raise StepFailed(_no_best(ctx, trials))
    assert best.run_id is not None
    summary = {
        "method": sweep.method,
        "parent_run_id": parent_run_id,
        "metric": gate.metric,
        "direction": gate.direction,
        "parallel": parallel_slots(target, sweep.max_parallel),
        "trials": [trial.summary() for trial in trials],
        "best": best.index,
    }
    return dataclasses.replace(trained_run(ctx, best.run_id, best.log_path, tags), sweep=summary)


def _record_on_parent(ctx: StepContext, parent_run_id: str, trials: list[Trial], best: Trial | None) -> None:
    """The trial table as the parent's sweep.json (also when the sweep stopped half-way) and, once
    there is a best trial, its run id, index and value."""
    client, metric = ctx.ws.mlflow, ctx.config.gate.metric
    table = {"metric": metric, "trials": [t.summary() for t in trials], "best": best.index if best else None}
    client.log_text(parent_run_id, json.dumps(table, indent=2), "sweep.json")
    if best is not None and best.metric is not None:
        client.set_tag(parent_run_id, "shipyard.sweep.best_run_id", best.run_id)
        client.set_tag(parent_run_id, "shipyard.sweep.best_trial", str(best.index))
        client.log_metric(parent_run_id, f"best_{metric}", best.metric)


def _no_best(ctx: StepContext, trials: list[Trial]) -> str:
    failed = [t for t in trials if t.status != "FINISHED"]
    if len(failed) == len(trials):
        first = failed[0]
        return (
            f"all {len(trials)} sweep trials failed; the first, trial {first.index} {first.params}: "
            f"{first.message or first.status}"
        )
    metric = ctx.config.gate.metric
    return (
        f"no sweep trial logged the gate's metric {metric!r}, so none can be the best: log it with "
        f"shipyard.log_metric({metric!r}, value) in {ctx.config.train.script}, or set gate.metric to "
        f"a metric the script logs"
    )
