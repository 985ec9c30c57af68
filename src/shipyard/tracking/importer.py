"""Bring a remote step's tracking data into the workspace: the run it logged far away becomes the
run the pipeline created for it here.

A host that cannot reach the workspace store (an ssh target) logs into stores inside the step's
outputs folder, which come back with the outputs:

    <outputs>/.tracking/mlflow.db (+ artifacts/)   what `import shipyard` logged (its workspace)
    <outputs>/mlruns/                              what plain `import mlflow` logged (file store)

`import_step_tracking` copies the newest top-level run of those stores into `into_run_id`
(parameters, every metric with its history, tags, artifacts, its MLflow 3 logged models) and
every other run as a child of it, then removes the two folders from the outputs. Artifact
locations recorded there are the remote host's paths; they are mapped onto the fetched copy by
what follows `.tracking/` or `mlruns/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

TRACKING_DIR = ".tracking"
FILE_STORE_DIR = "mlruns"
_SKIPPED_TAGS = {"mlflow.parentRunId", "mlflow.runName", "mlflow.user"}
_BATCH = 900


def _stores(outputs: Path) -> list[tuple[str, Path]]:
    found = []
    db = outputs / TRACKING_DIR / "mlflow.db"
    if db.is_file():
        found.append((f"sqlite:///{db}", outputs / TRACKING_DIR))
    if (outputs / FILE_STORE_DIR).is_dir():
        found.append((f"file:{outputs / FILE_STORE_DIR}", outputs / FILE_STORE_DIR))
    return found


def _runs(client: Any) -> list[Any]:
    runs = []
    for exp in client.search_experiments():
        runs += client.search_runs([exp.experiment_id], max_results=10_000)
    return runs


def _local_artifacts(artifact_uri: str, root: Path) -> Path | None:
    marker = f"/{root.name}/"
    if marker not in artifact_uri:
        return None
    path = root / artifact_uri.split(marker, 1)[1]
    return path if path.is_dir() and any(path.iterdir()) else None


def _copy(src: Any, run: Any, dst: Any, dst_run_id: str, root: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    metrics = [
        Metric(m.key, m.value, m.timestamp, m.step)
        for key in run.data.metrics
        for m in src.get_metric_history(run.info.run_id, key)
    ]
    params = [Param(k, v) for k, v in run.data.params.items()]
    tags = [RunTag(k, v) for k, v in run.data.tags.items() if k not in _SKIPPED_TAGS]
    tags.append(RunTag("shipyard.imported_from", run.info.run_id))
    for i in range(0, max(len(metrics), 1), _BATCH):
        dst.log_batch(
            dst_run_id,
            metrics=metrics[i : i + _BATCH],
            params=params if i == 0 else [],
            tags=tags if i == 0 else [],
        )
    artifacts = _local_artifacts(run.info.artifact_uri, root)
    if artifacts is not None:
        dst.log_artifacts(dst_run_id, str(artifacts))
    _copy_logged_models(src, run, dst, dst_run_id, root)


def _copy_logged_models(src: Any, run: Any, dst: Any, dst_run_id: str, root: Path) -> None:
    """The MLflow 3 logged models `run` logged (shipyard.log_model, <flavor>.log_model): created
    again in the workspace from `dst_run_id`, with their artifacts; the run's model-id tag follows."""
    from shipyard.tracking.run import MODEL_ID_TAG

    experiment_id = dst.get_run(dst_run_id).info.experiment_id
    found = src.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    for model in found:
        folder = _local_artifacts(model.artifact_location, root)
        if folder is None:
            continue
        copy = dst.create_logged_model(
            experiment_id,
            name=model.name,
            source_run_id=dst_run_id,
            tags=model.tags,
            params=model.params,
            model_type=model.model_type,
        )
        dst.log_model_artifacts(copy.model_id, str(folder))
        dst.finalize_logged_model(copy.model_id, "READY")
        if run.data.tags.get(MODEL_ID_TAG) == model.model_id:
            dst.set_tag(dst_run_id, MODEL_ID_TAG, copy.model_id)


def import_step_tracking(dst: Any, into_run_id: str, outputs: Path) -> int:
    """Import the runs a remote step logged under `outputs`; returns how many runs were copied."""
    from mlflow.tracking import MlflowClient

    outputs = Path(outputs)
    copied = 0
    main_done = False
    experiment_id = dst.get_run(into_run_id).info.experiment_id
    for uri, root in _stores(outputs):
        src = MlflowClient(tracking_uri=uri, registry_uri=uri)
        runs = sorted(_runs(src), key=lambda r: r.info.start_time or 0, reverse=True)
        tops = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        for run in tops + [r for r in runs if r not in tops]:
            if not main_done and run in tops:
                _copy(src, run, dst, into_run_id, root)
                main_done = True
            else:
                child = dst.create_run(
                    experiment_id,
                    run_name=run.info.run_name,
                    tags={"mlflow.parentRunId": into_run_id},
                )
                _copy(src, run, dst, child.info.run_id, root)
                dst.set_terminated(child.info.run_id, run.info.status or "FINISHED")
            copied += 1
    for _, root in _stores(outputs):
        shutil.rmtree(root, ignore_errors=True)
    return copied
