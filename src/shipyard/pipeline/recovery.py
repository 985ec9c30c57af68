"""Recovery after a crash: what a killed `shipyard run` (or `shipyard deploy`) left behind, found
and repaired by the next run and by `shipyard doctor`.

A process killed with `kill -9` runs no cleanup, so every record says who is doing the work:
a pipeline run its runner (host, pid, process start time), a deployment the process starting it
and, from the moment it exists, its server's pid (deploy/endpoints.py). Here that is checked
against this machine's processes:

- a `running` pipeline run whose runner is gone is marked `killed` (its running step failed, the
  steps it never reached skipped), its MLflow runs left RUNNING are set KILLED, and what its
  training script started (found by the run id in its environment) is stopped;
- a `starting` or `healthy` deployment whose starter is gone never became active: its server is
  stopped (by recorded pid, else by the deployment id on its command line) and it is marked failed;
- a scoring server of this workspace whose deployment is failed, replaced or deleted is stopped;
- when a killed run moved `production` but the pipeline's endpoint still serves another version,
  production is deployed there (package, start, smoke test, switch): the gate decided, the
  endpoint follows. Any other difference (a rollback, a failed smoke test) is only reported.

Only this host's processes are judged: a run or deployment of another machine on a shared
workspace is never called dead from here (shipyard/ownership.py). Records from before these
identities were kept (no runner or starter recorded) are left alone.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config.models import ProjectConfig
from shipyard.deploy.local import serving_processes
from shipyard.errors import ShipyardError
from shipyard.ownership import host_id, owned_here
from shipyard.pipeline import records
from shipyard.processes import process_alive, process_start
from shipyard.store import utcnow
from shipyard.store.models import AliasEvent, DeploymentRow, PipelineRun
from shipyard.workspace import Workspace

# A deployment in these states is on its way in: its starter must be alive.
STARTING_STATES = ("starting", "healthy")
# A deployment in these states has no business running a server.
ENDED_STATES = ("failed", "replaced", "deleted")


@dataclass
class Finding:
    """One thing found: what it is, what was wrong and what was (or would be) done."""

    kind: str  # pipeline_run | mlflow_run | process | deployment | endpoint
    id: str
    problem: str
    status: str  # repaired | would repair | reported | failed
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alive_here(pid: int | None, started: str | None) -> bool:
    """Is the process recorded as (pid, start time) still running on this host?"""
    if not pid or not process_alive(pid):
        return False
    now = process_start(pid)
    return started is None or now is None or now == started


def recover(
    ws: Workspace, config: ProjectConfig | None = None, *, dry_run: bool = False, report_all: bool = True
) -> list[Finding]:
    """Find and repair what interrupted runs and deployments left behind (see the module text).

    `config` is the pipeline's project (the first environment's deployment when there are
    environments): with it the endpoint is compared with `production`. `dry_run` changes
    nothing and says `would repair`; `report_all=False` (a run's start) leaves out differences
    that are only reported. Serialised by a workspace lock, so two runs starting together do not
    repair the same thing twice."""
    with ws.lock("recovery"):
        found = _dead_runs(ws, dry_run)
        found += _stale_deployments(ws, dry_run)
        found += _orphan_servers(ws, dry_run)
        if config is not None:
            killed = {f.id for f in found if f.kind == "pipeline_run"}  # a dry run has not marked them
            found += _serving(ws, config, dry_run, report_all, killed)
    return found


# -- pipeline runs ------------------------------------------------------------------------------


def _dead_runs(ws: Workspace, dry_run: bool) -> list[Finding]:
    here = host_id()
    with ws.store.session() as s:
        rows = list(
            s.execute(
                select(
                    PipelineRun.id,
                    PipelineRun.runner_pid,
                    PipelineRun.runner_start,
                    PipelineRun.mlflow_run_id,
                )
                .where(PipelineRun.status == "running", PipelineRun.runner_host == here)
                .where(PipelineRun.runner_pid.is_not(None))
            )
        )
    out: list[Finding] = []
    for run_id, pid, started, mlflow_run_id in rows:
        if pid == os.getpid() or alive_here(pid, started):
            continue
        reason = f"its runner (pid {pid} on {here}) died without finishing it"
        item = Finding("pipeline_run", run_id, reason, "would repair" if dry_run else "repaired")
        out.append(item)
        if dry_run:
            continue
        steps = records.mark_interrupted(ws, run_id, reason)
        item.actions.append("marked killed" + (f" (step {', '.join(steps)} failed)" if steps else ""))
        if mlflow_run_id:
            out += _kill_mlflow_runs(ws, run_id, mlflow_run_id)
    return out


def _kill_mlflow_runs(ws: Workspace, run_id: str, parent_id: str) -> list[Finding]:
    """The pipeline's MLflow runs still RUNNING (its parent, the train run, sweep trials): KILLED,
    after stopping any process a training script left that still logs to one of them."""
    client = ws.mlflow
    try:
        experiment = client.get_run(parent_id).info.experiment_id
        runs = {parent_id: client.get_run(parent_id)}
        for query in (
            f"tags.`shipyard.pipeline_run_id` = '{run_id}'",
            f"tags.`mlflow.parentRunId` = '{parent_id}'",
        ):
            for run in client.search_runs([experiment], filter_string=query, max_results=1000):
                runs[run.info.run_id] = run
    except Exception as exc:  # MLflow unreachable or the run deleted: say so, keep going
        return [Finding("mlflow_run", parent_id, f"could not read the MLflow runs: {exc}", "failed")]
    out = []
    for stopped in _stop_job_processes(set(runs)):
        out.append(
            Finding("process", str(stopped), f"left by pipeline run {run_id[:8]}", "repaired", ["killed"])
        )
    for mlflow_id, run in runs.items():
        if run.info.status != "RUNNING":
            continue
        client.set_terminated(mlflow_id, "KILLED")
        problem = f"left RUNNING by pipeline run {run_id[:8]}"
        out.append(Finding("mlflow_run", mlflow_id, problem, "repaired", ["set KILLED"]))
    return out


def _stop_job_processes(mlflow_run_ids: set[str]) -> list[int]:
    """Processes of this user whose environment names one of these runs (SHIPYARD_RUN_ID, set for
    every training job): what a script of a dead run left running. SIGKILL: its runner is gone."""
    wanted = {f"SHIPYARD_RUN_ID={r}".encode() for r in mlflow_run_ids}
    stopped = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        pid = int(entry)
        if pid == os.getpid():
            continue
        try:
            environ = set(Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"))
        except OSError:  # gone, or another user's
            continue
        if environ & wanted:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            stopped.append(pid)
    return stopped


# -- deployments ----------------------------------------------------------------------------------


def _stale_deployments(ws: Workspace, dry_run: bool) -> list[Finding]:
    """Deployments on their way in whose starter (on this host, this workspace) is gone."""
    from shipyard.deploy import runtime
    from shipyard.deploy.endpoints import get_deployment

    with ws.store.session() as s:
        rows = list(
            s.execute(
                select(DeploymentRow.id, DeploymentRow.starter_pid, DeploymentRow.starter_start)
                .where(DeploymentRow.state.in_(STARTING_STATES), DeploymentRow.owner_host == host_id())
                .where(DeploymentRow.starter_pid.is_not(None))
            )
        )
    out = []
    for dep_id, pid, started in rows:
        if pid == os.getpid() or alive_here(pid, started):
            continue
        dep = get_deployment(ws, dep_id)
        if not owned_here(ws.root, dep):  # another checkout's on this host: its doctor decides
            continue
        problem = f"{dep.state} since {dep.created_at}, but the process starting it (pid {pid}) is gone"
        item = Finding("deployment", dep_id, f"endpoint {dep.endpoint}: {problem}", "would repair")
        out.append(item)
        if not dry_run:
            _stop_and_fail(ws, runtime, dep, item, f"interrupted: {problem}")
    return out


def _stop_and_fail(ws: Workspace, runtime: Any, dep: Any, item: Finding, message: str) -> None:
    from shipyard.deploy.endpoints import _update

    try:
        runtime.stop(ws, dep)
    except (ShipyardError, OSError) as exc:
        item.status, item.actions = "failed", [f"stopping its server failed: {exc}"]
        return
    _update(ws, dep.id, state="failed", message=message)
    item.status, item.actions = "repaired", ["stopped its server", "marked failed"]


def _orphan_servers(ws: Workspace, dry_run: bool) -> list[Finding]:
    """Servers on this host whose deployment (in this workspace) has ended."""
    from shipyard.deploy.endpoints import get_deployment
    from shipyard.deploy.local import stop_server

    running = serving_processes()
    if not running:
        return []
    with ws.store.session() as s:
        ended = set(
            s.scalars(
                select(DeploymentRow.id).where(
                    DeploymentRow.id.in_(set(running.values())), DeploymentRow.state.in_(ENDED_STATES)
                )
            )
        )
    out = []
    for pid, dep_id in sorted(running.items()):
        if dep_id not in ended:
            continue
        dep = get_deployment(ws, dep_id)
        if not owned_here(ws.root, dep):
            continue
        item = Finding(
            "process",
            str(pid),
            f"serves deployment {dep_id[:8]} of {dep.endpoint}, which is {dep.state}",
            "would repair",
        )
        out.append(item)
        if dry_run:
            continue
        try:
            stop_server(pid)
        except ShipyardError as exc:
            item.status, item.actions = "failed", [str(exc)]
            continue
        item.status, item.actions = "repaired", ["stopped"]
    return out


# -- the endpoint and production ------------------------------------------------------------------


def _production_event(ws: Workspace, model: str) -> AliasEvent | None:
    with ws.store.session() as s:
        return s.scalars(
            select(AliasEvent)
            .where(AliasEvent.model_name == model, AliasEvent.alias == "production")
            .order_by(AliasEvent.id.desc())
            .limit(1)
        ).first()


def _serving(
    ws: Workspace, config: ProjectConfig, dry_run: bool, report_all: bool, killed: set[str]
) -> list[Finding]:
    """Does the pipeline's endpoint serve `production`? Read from Shipyard's alias history (the
    compare-and-set writes it with the move), so a healthy check imports no MLflow."""
    from shipyard.deploy.endpoints import live_deployments
    from shipyard.deploy.targets import target_class

    d, model = config.deployment, config.registry.model_name
    if d is None or target_class(d.target).runs_in_cluster or not config.registry.promote_on_pass:
        return []
    event = _production_event(ws, model)
    active = next((x for x in live_deployments(ws, d.name) if x.state == "active"), None)
    if event is None or not event.to_version or active is None or active.model_name != model:
        return []
    if active.model_version == event.to_version:
        return []
    problem = f"endpoint {d.name} serves {model}:{active.model_version} but production is {event.to_version}"
    mover = "killed" if event.pipeline_run_id in killed else _run_status(ws, event.pipeline_run_id)
    why = _not_repairable(ws, config, active, mover, killed)
    if why:
        return [Finding("endpoint", d.name, f"{problem}; {why}", "reported")] if report_all else []
    item = Finding(
        "endpoint",
        d.name,
        f"{problem} (moved by pipeline run {(event.pipeline_run_id or '')[:8]}, killed)",
        "would repair",
    )
    if not dry_run:
        _deploy_production(ws, config, event.to_version, item)
    return [item]


def _run_status(ws: Workspace, run_id: str | None) -> str | None:
    if not run_id:
        return None
    with ws.store.session() as s:
        row = s.get(PipelineRun, run_id)
        return row.status if row else None


def _not_repairable(
    ws: Workspace, config: ProjectConfig, active: Any, mover: str | None, killed: set[str]
) -> str | None:
    """Why the difference is reported rather than repaired (None: repair it)."""
    if mover != "killed":
        return (
            "production was not moved by an interrupted run (a rollback or a failed smoke test keeps "
            "the endpoint on purpose): deploy it with `shipyard deploy` if it should serve production"
        )
    if not owned_here(ws.root, active):
        return "its active deployment runs on another host: run `shipyard doctor` there"
    with ws.store.session() as s:
        busy = s.scalar(
            select(PipelineRun.id)
            .where(PipelineRun.project == config.name, PipelineRun.status == "running")
            .where(PipelineRun.id.not_in(killed))
            .limit(1)
        )
    if busy:
        return f"pipeline run {busy[:8]} is in progress and deploys it"
    return None


def _deploy_production(ws: Workspace, config: ProjectConfig, version: str, item: Finding) -> None:
    """Package (reused when it exists), start, smoke-test and switch to production's version."""
    from shipyard.deploy.facade import deploy_bundle

    started = utcnow()
    try:
        dep = deploy_bundle(ws, config, f"{config.registry.model_name}:{version}").deployment
        assert dep is not None
    except ShipyardError as exc:
        item.status, item.actions = "failed", [f"deploying production failed: {exc}"]
        return
    seconds = (utcnow() - started).total_seconds()
    item.status = "repaired"
    item.actions = [f"deployed {config.registry.model_name}:{version} as {dep.id[:8]} ({seconds:.1f} s)"]
