"""Run context: `start_run()` and the `ActiveRun` it returns, over a stateless MlflowClient.

Three ways a run comes to be:
- attached: the pipeline runner created the run and passed SHIPYARD_RUN_ID; we log into it and
  only flush at the end, because the runner owns its status;
- owned: a standalone script (or a nested child) creates the run and ends it FINISHED, FAILED or
  KILLED;
- implicit: the first `shipyard.log_*` call without an active run starts one (attached or owned);
  a later `start_run()` adopts it, and an atexit hook ends it otherwise.
Active runs form a process-wide stack (children above parents), guarded by a lock.

Each of them is also MLflow's active run (its fluent API, in the thread that started it): the
workspace's store becomes MLflow's tracking and registry URI and `mlflow.start_run(run_id=...)`
resumes the run, so `mlflow.log_*`, `mlflow.autolog()` and `mlflow.<flavor>.log_model` land in
the same run as `shipyard.log_*`. Ending it ends MLflow's too, except an attached run, which only
leaves MLflow's stack (the runner sets its status). A script written only against MLflow gets the
same run from MLFLOW_RUN_ID, which the runner sets beside SHIPYARD_RUN_ID (tracking/env.py).
"""

from __future__ import annotations

import atexit
import getpass
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError, UsageError
from shipyard.tracking import env
from shipyard.tracking.buffer import MetricBuffer

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
MODEL_TAG = "shipyard.model_artifact"  # the name of the model the script logged
MODEL_ID_TAG = "shipyard.model_id"  # its MLflow 3 logged model (a run from before: MODEL_TAG only)
_MAX_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH

_stack: list[ActiveRun] = []
_stack_lock = threading.RLock()
_atexit_registered = False


class ActiveRun:
    """A run being logged to. Use as a context manager, or call `end()`."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        experiment_id: str,
        *,
        attached: bool = False,
        parent_run_id: str | None = None,
        implicit: bool = False,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.attached = attached  # True: the runner owns the run's status; we never end it
        self.parent_run_id = parent_run_id
        self.implicit = implicit
        self.buffer = MetricBuffer(client, run_id)
        self.ended = False
        self.mlflow_bound = False  # True: this object made the run MLflow's active run

    def __repr__(self) -> str:
        kind = "attached" if self.attached else "owned"
        return f"ActiveRun(run_id={self.run_id!r}, experiment_id={self.experiment_id!r}, {kind})"

    # -- logging -------------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Log one parameter (written immediately)."""
        self.client.log_param(self.run_id, key, value)

    def log_params(self, params: dict[str, Any]) -> None:
        """Log several parameters in batches (written immediately)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Queue one metric value; it is written by the background flusher within ~1 s."""
        self.buffer.log_metric(key, value, step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Queue several metric values with one timestamp."""
        self.buffer.log_metrics(metrics, step)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a run tag (written immediately)."""
        self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy one local file into the run's artifacts (under `artifact_path` if given)."""
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"log_artifact: {p} is not a file (use log_artifacts for a folder)")
        self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local folder's contents into the run's artifacts."""
        p = Path(local_dir)
        if not p.is_dir():
            raise UsageError(f"log_artifacts: {p} is not a folder")
        self.client.log_artifacts(self.run_id, str(p), artifact_path)

    def log_model(
        self, model: Any, name: str = "model", *, input_example: Any = None, signature: Any = None
    ) -> str:
        """Log `model` with its MLflow flavor (scikit-learn, PyTorch, Spark ML, XGBoost, LightGBM,
        or an mlflow.pyfunc.PythonModel) as this run's MLflow 3 logged model named `name`, with
        the signature given or inferred from `input_example`.

        Tags the run with `shipyard.model_id` (and `shipyard.model_artifact=<name>`) so that the
        register step takes this model, and returns its URI `models:/<model_id>`. A Spark ML
        model is a run artifact (MLflow's spark flavor has no logged-model record):
        `runs:/<run_id>/<name>`, found by the `shipyard.model_artifact` tag alone.
        """
        from shipyard.names import check_name
        from shipyard.tracking.model import log_flavored_model

        check_name("artifact name", name)
        with _as_mlflow_run(self):
            info = log_flavored_model(model, name, input_example, signature)
        self.set_tag(MODEL_TAG, name)
        if not info.model_id:  # a flavor that logs a run artifact (Spark ML)
            return f"runs:/{self.run_id}/{name}"
        self.set_tag(MODEL_ID_TAG, info.model_id)
        return f"models:/{info.model_id}"

    def flush(self) -> None:
        """Write queued metrics now."""
        self.buffer.flush()

    # -- ending --------------------------------------------------------------------------------
    def end(self, status: str = "FINISHED") -> None:
        """Flush, leave the run stack and, unless attached, mark the run `status`.

        Children still active are ended first with the same status. A flush error is re-raised
        after the run is marked FAILED.
        """
        with _stack_lock:
            if self.ended:
                return
            if self in _stack:
                while _stack[-1] is not self:
                    _stack[-1].end(status)
                _stack.pop()
            self.ended = True
        flush_error: Exception | None = None
        try:
            self.buffer.close()
        except Exception as exc:
            flush_error = exc
            status = "FAILED" if status == "FINISHED" else status
        _unbind_mlflow(self, status)
        if not self.attached:
            self.client.set_terminated(self.run_id, status)
        if flush_error is not None:
            raise flush_error

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end("FINISHED")
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            self.end(status)
        except Exception:
            # Don't mask the script's own exception; report the lost metrics next to it.
            log.exception("shipyard: could not write all metrics of run %s", self.run_id)


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
) -> ActiveRun:
    """Start (or attach to) a run and make it the active one; use as `with start_run() as run:`.

    - With SHIPYARD_RUN_ID set (a script launched by the pipeline runner), a top-level run attaches
      to that run and leaves its status to the runner.
    - Otherwise the run is created in `experiment` (else SHIPYARD_EXPERIMENT, else the nearest
      shipyard.yaml's experiment, else "Default-shipyard") of the workspace.
    - `nested=True` inside an active run creates a child run tagged `mlflow.parentRunId`.
    """
    return _start(name, experiment, nested, tags, implicit=False)


def _start(
    name: str | None, experiment: str | None, nested: bool, tags: dict[str, Any] | None, implicit: bool
) -> ActiveRun:
    with _stack_lock:
        parent = _stack[-1] if _stack else None
        if parent is not None and not nested:
            if len(_stack) == 1 and parent.implicit:
                # A log call or parameters() started this run before the script's `with
                # start_run():`; that block takes it over instead of failing.
                return _adopt(parent, name, experiment, tags)
            raise UsageError(
                f"run {parent.run_id} is already active: end it first, or pass nested=True "
                "to start a child run"
            )
        if parent is not None:
            # Children stay next to their parent unless told otherwise.
            exp_id = env.workspace().experiment_id(experiment) if experiment else parent.experiment_id
            run = _create(parent.client, exp_id, name, tags, parent)
        elif env.runner_run_id():
            run = _attach(env.runner_run_id() or "", experiment, tags)
        else:
            ws = env.workspace()
            run = _create(ws.mlflow, ws.experiment_id(env.experiment_name(experiment)), name, tags, None)
        run.implicit = implicit
        _bind_mlflow(run)
        _stack.append(run)
        _register_atexit()
        return run


def _bind_mlflow(run: ActiveRun) -> None:
    """Make `run` MLflow's active run as well, in the workspace's store (module docstring)."""
    import mlflow

    uri = run.client.tracking_uri
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)  # the workspace keeps both in one store (Workspace.environment)
    current = mlflow.active_run()
    if current is not None and current.info.run_id == run.run_id:
        return  # the script (or autolog) resumed it already: leave it to whoever started it
    mlflow.start_run(run_id=run.run_id, nested=current is not None)
    run.mlflow_bound = True


@contextmanager
def _as_mlflow_run(run: ActiveRun) -> Iterator[None]:
    """MLflow's active run is `run` for the block (it is, unless logging from another thread)."""
    import mlflow

    current = mlflow.active_run()
    if current is not None and current.info.run_id == run.run_id:
        yield
        return
    mlflow.start_run(run_id=run.run_id, nested=current is not None)
    try:
        yield
    finally:
        _leave_mlflow_stack(run.run_id)  # still running: its owner ends it


def _unbind_mlflow(run: ActiveRun, status: str) -> None:
    if not run.mlflow_bound:
        return
    import mlflow

    current = mlflow.active_run()
    if current is None or current.info.run_id != run.run_id:
        return
    if not run.attached:
        mlflow.end_run(status)
        return
    # Attached: the runner owns the status, so leave MLflow's stack without ending the run
    # (mlflow.end_run would mark it terminated and unset MLFLOW_RUN_ID).
    _leave_mlflow_stack(run.run_id)


def _leave_mlflow_stack(run_id: str) -> None:
    """Take `run_id` off MLflow's active-run stack without ending it. MLflow has no public call
    for this; its fluent module keeps the stack per thread (mlflow is pinned; tests cover it)."""
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        fluent._last_active_run_id.set(run_id)


def _default_tags() -> dict[str, str]:
    tags = {"mlflow.source.type": "LOCAL"}
    if sys.argv and sys.argv[0] not in ("", "-c", "-m"):
        tags["mlflow.source.name"] = str(Path(sys.argv[0]).resolve())
    try:
        tags["mlflow.user"] = getpass.getuser()
    except Exception:  # no user name in some containers; the tag is informative only
        pass
    return tags


def _create(
    client: MlflowClient,
    experiment_id: str,
    name: str | None,
    tags: dict[str, Any] | None,
    parent: ActiveRun | None,
) -> ActiveRun:
    all_tags = {**_default_tags(), **{k: str(v) for k, v in (tags or {}).items()}}
    if parent is not None:
        all_tags[PARENT_TAG] = parent.run_id
    created = client.create_run(experiment_id, tags=all_tags, run_name=name)
    return ActiveRun(
        client, created.info.run_id, experiment_id, parent_run_id=parent.run_id if parent else None
    )


def _attach(run_id: str, experiment: str | None, tags: dict[str, Any] | None) -> ActiveRun:
    from mlflow.exceptions import MlflowException

    client = env.workspace().mlflow
    try:
        info = client.get_run(run_id).info
    except MlflowException:
        raise NotFoundError(
            f"{env.RUN_ID}={run_id}: no such run in {client.tracking_uri}; unset {env.RUN_ID} "
            "to start a standalone run"
        ) from None
    if experiment:
        log.warning("shipyard: attached to run %s; ignoring experiment=%r", run_id, experiment)
    run = ActiveRun(client, run_id, info.experiment_id, attached=True)
    for key, value in (tags or {}).items():
        run.set_tag(key, value)
    return run


def _adopt(
    run: ActiveRun, name: str | None, experiment: str | None, tags: dict[str, Any] | None
) -> ActiveRun:
    if experiment and not run.attached:
        exp = run.client.get_experiment(run.experiment_id)
        if exp.name != experiment:
            raise UsageError(
                f"a run was already started implicitly in experiment {exp.name!r} (by a log call or "
                f"parameters()); call start_run(experiment={experiment!r}) before logging"
            )
    run.implicit = False
    if name and not run.attached:
        run.set_tag("mlflow.runName", name)
    for key, value in (tags or {}).items():
        run.set_tag(key, value)
    return run


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(end_all_runs)
        _atexit_registered = True


def end_all_runs() -> None:
    """End every active run, innermost first (the atexit hook; safe to call any time).

    An uncaught exception in the script (sys.last_value is set by the interpreter before exit
    handlers run) ends them FAILED, otherwise FINISHED.
    """
    failed = getattr(sys, "last_value", None) is not None
    while True:
        run = active_run()
        if run is None:
            return
        try:
            run.end("FAILED" if failed else "FINISHED")
        except Exception:
            log.exception("shipyard: could not end run %s cleanly", run.run_id)
