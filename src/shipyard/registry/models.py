"""Model versions in MLflow's registry, aliases with a history kept in Shipyard's store.

MLflow holds names, versions, tags and aliases (so any MLflow client sees them); Shipyard adds
the audit trail of alias moves and the rule that one run is registered once per name. Writes take
the workspace's `registry` lock so concurrent pipelines keep versions consecutive and exactly one
version per alias.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from shipyard.errors import NotFoundError, ShipyardError, UsageError
from shipyard.names import check_name, shown
from shipyard.store.models import AliasEvent
from shipyard.workspace import Workspace

_REF = re.compile(r"(?P<name>[^:@]+)(?::(?P<version>[0-9]{1,18})|@(?P<alias>[^:@]+))?")


@dataclass
class ModelRef:
    """A model name with a version number or an alias, each checked by names.py's rule (it goes
    into MLflow filter strings and folder names)."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_name("model name", self.name)
        if self.version is not None:
            check_name("version number", str(self.version))
        if self.alias is not None:
            check_name("alias", self.alias)

    def __str__(self) -> str:
        return self.name + (f":{self.version}" if self.version else f"@{self.alias}" if self.alias else "")


@dataclass
class ModelVersionInfo:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_model_ref(text: str) -> ModelRef:
    """`name`, `name:3` or `name@production`."""
    m = _REF.fullmatch(text)
    if not m:
        raise UsageError(f"model reference {shown(text)}: expected NAME, NAME:VERSION or NAME@ALIAS")
    return ModelRef(m["name"], m["version"], m["alias"])


def actor() -> str:
    """Who is acting: SHIPYARD_ACTOR, a CI user, or the OS user."""
    for var in ("SHIPYARD_ACTOR", "GITHUB_ACTOR", "BUILD_REQUESTEDFOR", "GITLAB_USER_LOGIN"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _info(mv) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
        aliases=list(getattr(mv, "aliases", []) or []),
        created_at=mv.creation_timestamp,
    )


def _registered_names(ws: Workspace) -> list[str]:
    return sorted(m.name for m in ws.mlflow.search_registered_models(max_results=1000))


def _versions(ws: Workspace, name: str) -> list[ModelVersionInfo]:
    from mlflow.exceptions import MlflowException

    check_name("model name", name)  # it goes into a filter string
    found = ws.mlflow.search_model_versions(f"name = '{name}'", max_results=10000)
    versions = sorted((_info(mv) for mv in found), key=lambda v: int(v.version))
    if versions:
        # search_model_versions leaves `aliases` empty in MLflow's SQL store; the model has them.
        try:
            aliases = ws.mlflow.get_registered_model(name).aliases or {}
        except MlflowException:
            aliases = {}
        for v in versions:
            v.aliases = sorted(a for a, ver in aliases.items() if str(ver) == v.version)
    return versions


def resolve(ws: Workspace, ref: ModelRef | str) -> ModelVersionInfo:
    """The version a reference points at; a bare name means its latest version."""
    from mlflow.exceptions import MlflowException

    ref = parse_model_ref(ref) if isinstance(ref, str) else ref
    versions = _versions(ws, ref.name)
    if not versions:
        names = ", ".join(_registered_names(ws)) or "none registered yet"
        raise NotFoundError(f"no model named {ref.name!r}; models in this workspace: {names}")
    if ref.alias:
        try:
            return _info(ws.mlflow.get_model_version_by_alias(ref.name, ref.alias))
        except MlflowException:
            aliases = sorted({a for v in versions for a in v.aliases})
            raise NotFoundError(
                f"model {ref.name!r} has no alias {ref.alias!r}; aliases: {', '.join(aliases) or 'none'}"
            ) from None
    if ref.version:
        for v in versions:
            if v.version == ref.version:
                return v
        raise NotFoundError(
            f"model {ref.name!r} has no version {ref.version}; versions: "
            + ", ".join(v.version for v in versions)
        )
    return versions[-1]


def alias_version(ws: Workspace, name: str, alias: str) -> ModelVersionInfo | None:
    """The version holding `alias`, or None (also when the model does not exist yet)."""
    try:
        return resolve(ws, ModelRef(name, alias=alias))
    except NotFoundError:
        return None


def champion_for_cache(ws: Workspace, name: str, alias: str, candidate_version: str | None) -> str | None:
    """The version a candidate is compared with, from Shipyard's alias history (no MLflow import).

    When the alias already points at the candidate's own version, the candidate was compared with
    the version the alias held before it moved there, so that is the answer: a re-run with nothing
    changed then hits the same cache key as the run that promoted it.
    """
    with ws.store.session() as s:
        events = list(
            s.scalars(
                select(AliasEvent)
                .where(AliasEvent.model_name == name, AliasEvent.alias == alias)
                .order_by(AliasEvent.id.desc())
            )
        )
    if not events:
        return None
    current = events[0].to_version
    if candidate_version is None or current != candidate_version:
        return current
    return events[0].from_version


def find_run_version(ws: Workspace, name: str, run_id: str) -> ModelVersionInfo | None:
    """The version already registered from `run_id` under `name`, if any."""
    check_name("model name", name)
    found = ws.mlflow.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return _info(found[0]) if found else None


def register(
    ws: Workspace,
    name: str,
    run_id: str,
    source: str,
    tags: dict[str, str] | None = None,
    *,
    reuse_existing: bool = False,
) -> tuple[ModelVersionInfo, bool]:
    """Register `source` from `run_id` as a new version of `name`.

    The same run is never registered twice under one name: with `reuse_existing` the existing
    version is returned (created=False), otherwise that is an error.
    """
    from mlflow.exceptions import MlflowException

    from shipyard.tracking.model import model_id_of

    client = ws.mlflow
    with ws.lock("registry"):
        existing = find_run_version(ws, name, run_id)
        if existing:
            if reuse_existing:
                return existing, False
            raise ShipyardError(f"run {run_id} is already registered as {name} version {existing.version}")
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        model_id = model_id_of(source)  # an MLflow 3 logged model: linked to the version
        mv = client.create_model_version(name, source, run_id=run_id, tags=tags or {}, model_id=model_id)
        if model_id:
            _link_logged_model(client, model_id, name, str(mv.version))
        return _info(mv), True


def _link_logged_model(client: Any, model_id: str, name: str, version: str) -> None:
    """Record the version on its logged model, as `mlflow.register_model` does (the tag MLflow's
    UI reads to show a logged model's registered versions)."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    model = client.get_logged_model(model_id)
    linked = json.loads(model.tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    linked.append({"name": name, "version": version})
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(linked)})


def set_alias(
    ws: Workspace,
    name: str,
    alias: str,
    version: str,
    *,
    reason: str,
    pipeline_run_id: str | None = None,
    who: str | None = None,
) -> dict[str, Any]:
    """Point `alias` at `version` whatever it points at now, and record the move (no-op,
    unrecorded, if already there). Each attempt is a compare-and-set, so the recorded `from` is
    the version really replaced even when another machine moves the alias at the same moment."""
    from shipyard.registry.aliases import AliasConflict, compare_and_set, current

    check_name("alias", alias)
    resolve(ws, ModelRef(name, version=str(version)))  # clear error for unknown versions
    before = current(ws, name, alias)
    for _ in range(20):
        try:
            move = compare_and_set(
                ws,
                name,
                alias,
                str(version),
                expected=before,
                reason=reason,
                actor=who or actor(),
                pipeline_run_id=pipeline_run_id,
            )
            return move.to_dict()
        except AliasConflict as exc:
            before = exc.current
    raise ShipyardError(f"{name}@{alias}: could not move it, other writers kept moving it first; retry")


def delete_alias(
    ws: Workspace, name: str, alias: str, *, reason: str, force: bool = False, who: str | None = None
) -> dict[str, Any]:
    """Remove `alias` and record why in its history. `production` is what pipelines and
    environments deploy and what the gate compares with: while a live deployment serves the
    version it points at, deleting it is refused unless `force` (the deployment keeps serving;
    the next run's gate sees no production model)."""
    from shipyard.registry.aliases import AliasConflict, compare_and_delete, current

    check_name("alias", alias)
    for _ in range(20):
        before = current(ws, name, alias)
        if before is None:
            raise NotFoundError(f"{name}@{alias} is not set (see `shipyard models show {name}`)")
        if alias == "production" and not force:
            serving = _serving_endpoints(ws, name, before)
            if serving:
                raise ShipyardError(
                    f"{name}@production (v{before}) is served by endpoint {', '.join(serving)}: "
                    "roll back or delete the endpoint first, or pass --force to delete the alias anyway"
                )
        try:
            return compare_and_delete(
                ws, name, alias, expected=before, reason=reason, actor=who or actor()
            ).to_dict()
        except AliasConflict:
            continue
    raise ShipyardError(f"{name}@{alias}: could not delete it, other writers kept moving it; retry")


def _serving_endpoints(ws: Workspace, name: str, version: str) -> list[str]:
    """Endpoints with a live deployment of `name` version `version`."""
    from shipyard.store.models import DeploymentRow

    with ws.store.session() as s:
        q = select(DeploymentRow.endpoint).where(
            DeploymentRow.model_name == name,
            DeploymentRow.model_version == version,
            DeploymentRow.state.in_(("healthy", "active")),
        )
        return sorted(set(s.scalars(q)))


def alias_history(ws: Workspace, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Every recorded alias move of a model, oldest first."""
    ModelRef(name, alias=alias or None)  # the name rule for both
    with ws.store.session() as s:
        q = select(AliasEvent).where(AliasEvent.model_name == name).order_by(AliasEvent.id)
        if alias:
            q = q.where(AliasEvent.alias == alias)
        return [
            {
                "when": e.created_at.isoformat(timespec="seconds"),
                "alias": e.alias,
                "from": e.from_version,
                "to": e.to_version,
                "who": e.actor,
                "why": e.reason,
                "pipeline_run_id": e.pipeline_run_id,
            }
            for e in s.scalars(q)
        ]


def list_models(ws: Workspace) -> list[dict[str, Any]]:
    """Registered models with their latest version and aliases."""
    out = []
    for rm in ws.mlflow.search_registered_models(max_results=1000):
        versions = _versions(ws, rm.name)
        out.append(
            {
                "name": rm.name,
                "versions": len(versions),
                "latest_version": versions[-1].version if versions else None,
                "aliases": dict(sorted((rm.aliases or {}).items())),
            }
        )
    return sorted(out, key=lambda m: m["name"])


def show_model(ws: Workspace, name: str) -> dict[str, Any]:
    """A model's versions (with tags and aliases)."""
    versions = _versions(ws, name)
    if not versions:
        resolve(ws, name)  # raises NotFoundError listing what exists
    return {"name": name, "versions": [v.to_dict() for v in versions]}
