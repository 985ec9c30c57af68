"""Cluster lifecycle (Azure ML's cluster_config scripts): create, start, status, stop, delete.

Shipyard manages the clusters it can run itself — a local Ray cluster (ray/head.py) — and
records their state in the workspace store (`shipyard_compute`). Every command is idempotent:
create is create-or-get (and starts a stopped cluster), start of a running cluster and stop of a
stopped one say so and do nothing. A cluster defined in shipyard.yaml's compute: section takes
its settings from there; `shipyard compute create NAME --type ray` records them in the store.

Targets Shipyard does not run (an ssh host, an existing Ray cluster by address, a Spark master)
have no lifecycle here: `status` asks their target's `probe`, the other commands say there is
nothing to do. `last_used_at` is touched by every job; `stop_idle` (called by `shipyard reap`) stops a
running cluster idle longer than its `idle_minutes` with no job running on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from sqlalchemy import select

from shipyard.compute.resolve import get_target, recorded_spec
from shipyard.config.compute import ComputeSpec, RayCompute, check_compute_name
from shipyard.errors import ConfigError, NotFoundError, UsageError
from shipyard.store.db import utcnow
from shipyard.store.models import ComputeRow

MANAGED = ("ray",)


@dataclass
class ClusterInfo:
    name: str
    type: str
    state: str  # created | running | stopped | failed | deleted | external
    managed: bool
    address: str | None = None
    idle_minutes: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    last_used_at: str | None = None
    message: str | None = None
    gcs_address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _info(row: ComputeRow, message: str | None = None) -> ClusterInfo:
    return ClusterInfo(
        name=row.name,
        type=row.type,
        state=row.state,
        managed=True,
        address=row.address,
        idle_minutes=row.idle_minutes,
        settings=dict(row.settings or {}),
        created_at=_iso(row.created_at),
        started_at=_iso(row.started_at),
        stopped_at=_iso(row.stopped_at),
        last_used_at=_iso(row.last_used_at),
        message=message or row.message,
        gcs_address=(row.runtime or {}).get("gcs_address") if row.state == "running" else None,
    )


def _external(name: str, spec: Any) -> ClusterInfo:
    address = getattr(spec, "address", None) or getattr(spec, "host", None) or getattr(spec, "master", None)
    return ClusterInfo(name, spec.type, "external", False, address, settings=spec.model_dump(mode="json"))


def _managed_spec(spec: ComputeSpec) -> TypeGuard[RayCompute]:
    """A cluster Shipyard runs itself (MANAGED: ray), not one given by its address."""
    return spec.type in MANAGED and getattr(spec, "address", None) is None


def _spec_for(ws: Any, name: str, config: Any, type_: str | None, settings: dict[str, Any]) -> ComputeSpec:
    section = dict(getattr(config, "compute", None) or {})
    if name in section:
        spec = section[name]
        if type_ and type_ != spec.type:
            raise UsageError(f"compute {name} is defined as type {spec.type} in shipyard.yaml, not {type_}")
        return spec
    recorded = recorded_spec(ws, name)
    if recorded is not None:
        return recorded
    if type_ is None:
        raise UsageError(
            f"compute {name} is not defined in shipyard.yaml: give --type ray to create a local Ray cluster"
        )
    if type_ != "ray":
        raise UsageError(
            f"--type {type_}: only ray clusters are created from the command line; define ssh and "
            "spark targets under compute: in shipyard.yaml"
        )
    try:
        return RayCompute.model_validate({"type": "ray", **settings})
    except ValueError as exc:
        raise ConfigError(f"compute {name}: {exc}") from None


def create(ws: Any, name: str, config: Any = None, type_: str | None = None, **settings: Any) -> ClusterInfo:
    """Create-or-get `name`, and start it (a managed cluster that already runs is left as it is)."""
    try:
        check_compute_name(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    spec = _spec_for(ws, name, config, type_, {k: v for k, v in settings.items() if v is not None})
    if not _managed_spec(spec):
        info = _external(name, spec)
        info.message = f"{name} is a {spec.type} target Shipyard does not run: nothing to create"
        return info
    with ws.lock(f"compute-{name}"):
        with ws.store.session() as s:
            row = s.get(ComputeRow, name)
            existed = row is not None and row.state != "deleted"
            if row is None:
                row = ComputeRow(name=name, created_at=utcnow(), runtime={})
                s.add(row)
            if not existed:
                row.type, row.state = spec.type, "created"
                row.message, row.created_at = None, utcnow()
            if not existed or name in (getattr(config, "compute", None) or {}):
                # shipyard.yaml is the source of a cluster it defines: edits apply on the next start
                row.settings, row.idle_minutes = spec.model_dump(mode="json"), spec.idle_minutes
        info = _start_locked(ws, name)
    if existed:
        info.message = f"{name} already existed; " + (info.message or "")
    return info


def start(ws: Any, name: str, config: Any = None) -> ClusterInfo:
    spec = _lookup(ws, name, config)
    if spec is not None:
        return _nothing(name, spec, "start")
    defined = (getattr(config, "compute", None) or {}).get(name)
    with ws.lock(f"compute-{name}"):
        if defined is not None:
            with ws.store.session() as s:
                row = _row(s, name)
                row.settings, row.idle_minutes = defined.model_dump(mode="json"), defined.idle_minutes
        return _start_locked(ws, name)


def _elsewhere(ws: Any, row: ComputeRow) -> str | None:
    """Where a local cluster runs when another host or checkout started it (None: here). Its
    processes and 127.0.0.1 addresses mean something only there, so nothing here probes, stops
    or connects to them."""
    from types import SimpleNamespace

    from shipyard.ownership import describe, owned_here

    runtime = row.runtime or {}
    owner = SimpleNamespace(owner_host=runtime.get("owner_host"), owner_root=runtime.get("owner_root"))
    return None if owned_here(ws.root, owner) else describe(owner)


def _refuse_elsewhere(ws: Any, row: ComputeRow, verb: str) -> None:
    where = _elsewhere(ws, row)
    if where is not None and row.state == "running":
        raise ConfigError(f"compute {row.name} runs on {where}: {verb} it there")


def _start_locked(ws: Any, name: str) -> ClusterInfo:
    from shipyard.compute.ray import head
    from shipyard.ownership import Owner

    with ws.store.session() as s:
        row = _row(s, name)
        if row.state == "running" and _elsewhere(ws, row) is not None:
            return _info(row, f"{name} is already running on {_elsewhere(ws, row)}")
        if row.state == "running" and head.head_alive(row.runtime or {}):
            return _info(row, f"{name} is already running")
        settings, old = dict(row.settings), dict(row.runtime or {})
    head.stop_head(old)  # what is left of a head that died (its own processes only)
    try:
        runtime = head.start_head(name, ws.subdir("compute", name), settings.get("num_cpus"))
        owner = Owner.here(ws.root).fields()
        runtime |= {"owner_host": owner["owner_host"], "owner_root": owner["owner_root"]}
    except Exception as exc:
        with ws.store.session() as s:
            row = _row(s, name)
            row.state, row.message = "failed", str(exc)
        raise
    with ws.store.session() as s:
        row = _row(s, name)
        now = utcnow()
        row.state, row.runtime, row.address, row.message = "running", runtime, runtime["dashboard_url"], None
        row.started_at, row.last_used_at, row.stopped_at = now, now, None
        return _info(row, f"started {name} at {runtime['dashboard_url']}")


def stop(ws: Any, name: str, config: Any = None, reason: str = "stopped") -> ClusterInfo:
    spec = _lookup(ws, name, config)
    if spec is not None:
        return _nothing(name, spec, "stop")
    from shipyard.compute.ray import head

    with ws.lock(f"compute-{name}"):
        with ws.store.session() as s:
            row = _row(s, name)
            _refuse_elsewhere(ws, row, "stop")
            runtime = dict(row.runtime or {})
            if row.state in ("stopped", "created", "failed") and not head.head_alive(runtime):
                return _info(row, f"{name} is already stopped")
        head.stop_head(runtime)
        with ws.store.session() as s:
            row = _row(s, name)
            row.state, row.stopped_at, row.message, row.address = "stopped", utcnow(), reason, None
            row.runtime = {"log_path": runtime.get("log_path")}
            return _info(row, f"stopped {name}")


def status(ws: Any, name: str, config: Any = None) -> ClusterInfo:
    """The recorded state, checked against what runs (a head that died reads as failed)."""
    spec = _lookup(ws, name, config)
    if spec is not None:
        return _probe_external(name, spec)
    from shipyard.compute.ray import head

    with ws.store.session() as s:
        row = _row(s, name)
        where = _elsewhere(ws, row)
        if row.state == "running" and where is not None:
            return _info(row, f"running on {where} (checked there only)")
        if row.state == "running" and not head.head_alive(row.runtime or {}):
            row.state, row.message = "failed", "the head process is gone (machine restarted or killed)"
        return _info(row)


def delete(ws: Any, name: str, config: Any = None, permanent: bool = False) -> ClusterInfo:
    """Stop and mark deleted; `permanent` also removes the recorded state."""
    spec = _lookup(ws, name, config)
    if spec is not None:
        return _nothing(name, spec, "delete")
    info = stop(ws, name, reason="deleted")
    with ws.store.session() as s:
        row = _row(s, name)
        if permanent:
            s.delete(row)
            info.state, info.message = "deleted", f"deleted {name} and its recorded state"
        else:
            row.state = info.state = "deleted"
            info.message = f"deleted {name} (its record is kept; --permanent removes it)"
    return info


def list_clusters(ws: Any, config: Any = None) -> list[ClusterInfo]:
    """Recorded clusters (deleted ones left out) and the targets of the compute: section."""
    with ws.store.session() as s:
        rows = {r.name: _info(r) for r in s.scalars(select(ComputeRow).order_by(ComputeRow.name))}
    found = {n: i for n, i in rows.items() if i.state != "deleted"}
    for name, spec in (getattr(config, "compute", None) or {}).items():
        if not _managed_spec(spec):
            found[name] = _external(name, spec)
        elif name not in found:
            found[name] = ClusterInfo(
                name, spec.type, "not created", True, settings=spec.model_dump(mode="json")
            )
    return [found[n] for n in sorted(found)]


def touch(ws: Any, name: str) -> None:
    """A job started or ended on `name` (idle time counts from here)."""
    with ws.store.session() as s:
        row = s.get(ComputeRow, name)
        if row is not None:
            row.last_used_at = utcnow()


def _here_or_refuse(ws: Any, name: str) -> None:
    with ws.store.session() as s:
        row = s.get(ComputeRow, name)
        if row is not None:
            _refuse_elsewhere(ws, row, "use")


def ray_connect_address(ws: Any, name: str) -> str:
    """The GCS address (host:port) of the running local cluster `name`, for ray.init."""
    _here_or_refuse(ws, name)
    info = status(ws, name)
    if info.state != "running" or not info.gcs_address:
        raise ConfigError(f"compute {name} is {info.state}: start it with `shipyard compute start {name}`")
    return info.gcs_address


def dashboard_url(ws: Any, name: str) -> str:
    """The Jobs API address of the running local cluster `name` (clear error when it is not)."""
    _here_or_refuse(ws, name)
    info = status(ws, name)
    if info.state != "running" or not info.address:
        raise ConfigError(f"compute {name} is {info.state}: start it with `shipyard compute start {name}`")
    return info.address


def stop_idle(ws: Any, now: datetime | None = None, dry_run: bool = False) -> list[ClusterInfo]:
    """Stop every running managed cluster idle past its idle_minutes with no job running."""
    from shipyard.compute.ray.jobs_api import active_jobs

    now = now or utcnow()
    with ws.store.session() as s:
        running = s.scalars(select(ComputeRow).where(ComputeRow.state == "running"))
        rows = [r for r in running if _elsewhere(ws, r) is None]  # each host stops its own
        due = [
            (r.name, r.address)
            for r in rows
            if r.idle_minutes
            and now - (r.last_used_at or r.started_at or now) > timedelta(minutes=r.idle_minutes)
        ]
    stopped = []
    for name, address in due:
        if address and active_jobs(address):
            touch(ws, name)  # busy: the idle clock restarts
            continue
        if dry_run:
            stopped.append(status(ws, name))
        else:
            stopped.append(stop(ws, name, reason="idle"))
    return stopped


def _row(s: Any, name: str) -> ComputeRow:
    row = s.get(ComputeRow, name)
    if row is None or row.state == "deleted":
        raise NotFoundError(
            f"no compute {name!r} (see `shipyard compute list`; create it with "
            f"`shipyard compute create {name} --type ray`)"
        )
    return row


def _lookup(ws: Any, name: str, config: Any) -> Any:
    """The config spec when `name` is a target Shipyard does not run; None for a managed one."""
    spec = (getattr(config, "compute", None) or {}).get(name)
    if spec is not None and not _managed_spec(spec):
        return spec
    return None


def _nothing(name: str, spec: Any, verb: str) -> ClusterInfo:
    info = _external(name, spec)
    info.message = f"{name} is a {spec.type} target Shipyard does not run: nothing to {verb}"
    return info


def _probe_external(name: str, spec: Any) -> ClusterInfo:
    """What the target's probe says about a target Shipyard does not run."""
    info = _external(name, spec)
    try:
        info.state = get_target(name, None, _Config({name: spec})).probe()
    except Exception as exc:
        info.state, info.message = "unreachable", str(exc)
    return info


@dataclass
class _Config:
    compute: dict[str, Any]
