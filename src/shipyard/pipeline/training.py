"""The training script as a job on a compute target, and the record of the run it trained: used
by the train step for its one run and by a sweep (pipeline/sweep.py) for each trial and its best.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.compute.base import Distribution, StepJob
from shipyard.errors import StepFailed
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.outputs import TrainedRun
from shipyard.tracking.env import run_variables
from shipyard.tracking.model import logged_model_uri
from shipyard.tracking.run import MODEL_ID_TAG, MODEL_TAG

STEP = "train"


def train_job(
    ctx: StepContext,
    run_id: str,
    log_path: Path,
    secret_env: dict[str, str],
    *,
    params: dict[str, Any] | None = None,
    outputs: Path | None = None,
) -> StepJob:
    """The script's job; a sweep trial passes its own `params` and `outputs` folder."""
    t = ctx.config.train
    outputs = outputs or ctx.ws.subdir("outputs", ctx.pipeline_run_id, STEP)
    inputs = {k: str(ctx.config.path(v)) for k, v in t.inputs.items()}
    env = {
        **ctx.ws.environment(),
        **run_variables(run_id),
        "SHIPYARD_EXPERIMENT": ctx.config.experiment_name,
        # A run the script starts itself (after MLflow consumed MLFLOW_RUN_ID) stays in the project.
        "MLFLOW_EXPERIMENT_ID": ctx.ws.experiment_id(ctx.config.experiment_name),
        "SHIPYARD_PARAMS": json.dumps(ctx.params if params is None else params),
        "SHIPYARD_INPUTS": json.dumps(inputs),
        "SHIPYARD_OUTPUTS": str(outputs),
        "PYTHONUNBUFFERED": "1",
    }
    return StepJob(
        name=STEP,
        project_dir=ctx.config.project_dir,
        script=t.script,
        log_path=log_path,
        outputs_dir=outputs,
        env=env,
        secret_env=secret_env,  # in this process's memory and the child's environment only
        inputs={k: Path(v) for k, v in inputs.items()},
        environment=ctx.config.path(t.environment) if t.environment else None,
        packages=ctx.config.packages,
        timeout_s=t.timeout_s,
        distribution=(
            Distribution(d.workers, d.torch_backend, d.gpu) if (d := t.distributed) is not None else None
        ),
    )


def script_model_uri(run: Any) -> str | None:
    """The model `shipyard.log_model` logged (it wins over others the run logged through MLflow):
    its logged model, or for a run from before logged models its run artifact folder."""
    tags = run.data.tags
    if tags.get(MODEL_ID_TAG):
        return f"models:/{tags[MODEL_ID_TAG]}"
    return f"runs:/{run.info.run_id}/{tags[MODEL_TAG]}" if tags.get(MODEL_TAG) else None


def trained_run(ctx: StepContext, run_id: str, log_path: Path, tags: dict[str, str]) -> TrainedRun:
    """The step's output record for the run that trained the model (a sweep's best trial)."""
    run = ctx.ws.mlflow.get_run(run_id)
    model_uri = script_model_uri(run) or logged_model_uri(ctx.ws.mlflow, run)
    if model_uri is None:
        raise StepFailed(
            f"{ctx.config.train.script} logged no model: call shipyard.log_model(model), or log it with "
            "MLflow (mlflow.sklearn.log_model(model, name='model'), mlflow.autolog(), ...)"
        )
    return TrainedRun(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        model_uri=model_uri,
        dataset_hash=tags.get("shipyard.dataset_hash"),
        log_path=str(log_path),
        compute=ctx.config.train.compute,
    )
