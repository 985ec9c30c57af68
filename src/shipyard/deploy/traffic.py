"""Endpoints as stable URLs: their port, traffic weights per slot, mirror share, and history.

An endpoint (EndpointRow) keeps one port for its whole life; the workspace's router (nginx)
listens there and splits requests between the endpoint's live deployments by *slot* (blue,
green, ...). Every change is validated before anything moves: weights are whole percents that
sum to exactly 100 and name only slots with a live deployment. The router checks the new
configuration before it reloads, and the database is written only after the router took it, so
a refused change leaves both as they were.

Each change is recorded in the alias-event table (model_name `endpoint:NAME`, alias `traffic`,
the weights and the deployment behind each slot as JSON in `reason`), which is what `rollback`
reads to find the previous deployment.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from shipyard.deploy import runtime
from shipyard.errors import ConfigError, NotFoundError, UsageError
from shipyard.names import check_name
from shipyard.router.nginx import NginxRouter, Route, require_nginx
from shipyard.store import utcnow
from shipyard.store.models import AliasEvent, DeploymentRow, EndpointRow
from shipyard.workspace import Workspace

LIVE_STATES = ("healthy", "active")
HISTORY_ALIAS = "traffic"


@dataclass
class SlotInfo:
    deployment_id: str
    url: str
    state: str
    model: str


@dataclass
class EndpointInfo:
    name: str
    url: str | None
    port: int | None
    traffic: dict[str, int]
    mirror: dict[str, int]
    slots: dict[str, SlotInfo] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def router(ws: Workspace) -> NginxRouter:
    return NginxRouter(ws.subdir("router"))


def history_key(endpoint: str) -> str:
    return f"endpoint:{endpoint}"


# -- validation (pure) ----------------------------------------------------------------------------
def check_slot(slot: str) -> str:
    return check_name("slot name", slot)


def parse_assignments(items: list[str], what: str = "weight") -> dict[str, int]:
    """['blue=90', 'green=10'] → {'blue': 90, 'green': 10}."""
    out: dict[str, int] = {}
    for item in items:
        slot, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise UsageError(f"{what} {item!r}: write SLOT=PERCENT with a whole number, e.g. blue=90")
        if slot in out:
            raise UsageError(f"{what} for slot {slot!r} given twice")
        out[check_slot(slot.strip())] = int(value)
    return out


def validate_weights(weights: dict[str, int], live: set[str]) -> dict[str, int]:
    """Whole percents ≥ 0, summing to exactly 100, only for live slots; else UsageError."""
    if not weights:
        raise UsageError("no weights given: e.g. blue=90 green=10")
    for slot, pct in weights.items():
        check_slot(slot)
        if not isinstance(pct, int) or isinstance(pct, bool) or pct < 0 or pct > 100:
            raise UsageError(f"weight of {slot!r} is {pct!r}: use a whole percent from 0 to 100")
    unknown = sorted(set(weights) - live)
    if unknown:
        raise UsageError(
            f"slot(s) {', '.join(unknown)} have no live deployment on this endpoint; "
            f"live slots: {', '.join(sorted(live)) or 'none'}"
        )
    total = sum(weights.values())
    if total != 100:
        raise UsageError(f"weights sum to {total}, they must sum to exactly 100")
    return dict(weights)


def validate_mirror(mirror: dict[str, int], live: set[str]) -> dict[str, int]:
    """Mirror shares: live slots, whole percents 0..100, at most one slot mirrored."""
    mirror = {s: p for s, p in mirror.items() if p}
    unknown = sorted(set(mirror) - live)
    if unknown:
        raise UsageError(f"mirror slot(s) {', '.join(unknown)} have no live deployment on this endpoint")
    for slot, pct in mirror.items():
        if not isinstance(pct, int) or pct < 0 or pct > 100:
            raise UsageError(f"mirror share of {slot!r} is {pct!r}: use a whole percent from 0 to 100")
    if sum(mirror.values()) > 100:
        raise UsageError("mirror shares sum to more than 100")
    return mirror


# -- reads ----------------------------------------------------------------------------------------
def live_slots(ws: Workspace, endpoint: str) -> dict[str, SlotInfo]:
    """Slot → the live deployment in it (an active one wins over a healthy one, newer over older)."""
    with ws.store.session() as s:
        rows = list(
            s.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.endpoint == endpoint, DeploymentRow.state.in_(LIVE_STATES))
                .order_by(DeploymentRow.created_at)
            )
        )
        found = [
            (
                r.slot,
                r.id,
                r.url,
                r.state,
                f"{r.model_name}:{r.model_version}",
                SimpleNamespace(
                    target=r.target,
                    pid=r.pid,
                    container_id=r.container_id,
                    url=r.url,
                    port=r.port,
                    owner_host=r.owner_host,
                    owner_root=r.owner_root,
                    process_start=r.process_start,
                ),
            )
            for r in rows
        ]
    out: dict[str, SlotInfo] = {}
    for slot, dep_id, url, state, model, server in found:
        if not (slot and url and runtime.alive(ws, server)):
            continue
        if slot in out and out[slot].state == "active" and state != "active":
            continue
        out[slot] = SlotInfo(dep_id, url, state, model)
    return out


def _to_info(row: EndpointRow, slots: dict[str, SlotInfo] | None = None) -> EndpointInfo:
    return EndpointInfo(
        row.name, row.url, row.port, dict(row.traffic or {}), dict(row.mirror or {}), slots or {}
    )


def get_endpoint(ws: Workspace, name: str) -> EndpointInfo | None:
    with ws.store.session() as s:
        row = s.get(EndpointRow, name)
        info = _to_info(row) if row else None
    if info is not None:
        info.slots = live_slots(ws, name)
    return info


def traffic_history(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """The endpoint's traffic changes, newest first."""
    with ws.store.session() as s:
        events = list(
            s.scalars(
                select(AliasEvent)
                .where(AliasEvent.model_name == history_key(name), AliasEvent.alias == HISTORY_ALIAS)
                .order_by(AliasEvent.id.desc())
            )
        )
        return [
            json.loads(e.reason) | {"at": e.created_at.isoformat(timespec="seconds"), "who": e.actor}
            for e in events
        ]


# -- writes ---------------------------------------------------------------------------------------
def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_endpoint(ws: Workspace, name: str, host: str = "127.0.0.1", port: int = 0) -> EndpointInfo:
    """The endpoint's record, created with its stable port on first use."""
    with ws.store.session() as s:
        row = s.get(EndpointRow, name)
        if row is None:
            port = port or _free_port(host)
            now = utcnow()
            url_host = f"[{host}]" if ":" in host else host
            row = EndpointRow(
                name=name,
                url=f"http://{url_host}:{port}",
                port=port,
                traffic={},
                mirror={},
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
        return _to_info(row)


def _route(info: EndpointInfo, weights: dict[str, int], mirror: dict[str, int]) -> Route | None:
    used = {s for s, p in weights.items() if p > 0} | set(mirror)
    if not used or not used <= set(info.slots) or info.port is None:
        return None  # nothing (alive) to send to: the endpoint's port stays closed
    host = urlsplit(info.url or "").hostname or "127.0.0.1"
    upstreams = {slot: urlsplit(info.slots[slot].url).netloc for slot in used}
    return Route(info.name, info.port, upstreams, {s: weights[s] for s in used if s in weights}, mirror, host)


def _routes(ws: Workspace, override: EndpointInfo | None = None) -> list[Route]:
    with ws.store.session() as s:
        names = list(s.scalars(select(EndpointRow.name)))
    routes = []
    for name in names:
        info = override if override is not None and override.name == name else get_endpoint(ws, name)
        route = _route(info, info.traffic, info.mirror) if info else None
        if route is not None:
            routes.append(route)
    return routes


def set_traffic(
    ws: Workspace,
    name: str,
    weights: dict[str, int],
    mirror: dict[str, int] | None = None,
    *,
    reason: str = "traffic set",
    drain: bool = True,
) -> EndpointInfo:
    """Validate, apply to the router, then record. `mirror=None` keeps the current mirror (minus
    slots that are no longer live). With `drain` (the default) it returns once the old router
    workers have exited: none can still send to a slot that lost its traffic, and their idle
    client connections are closed rather than closing under a client's next request."""
    from shipyard.registry.models import actor

    with ws.lock("router"):
        info = get_endpoint(ws, name)
        if info is None:
            raise NotFoundError(f"no endpoint {name!r}: deploy to it first")
        live = set(info.slots)
        weights = validate_weights(weights, live)
        kept = {s: p for s, p in info.mirror.items() if s in live} if mirror is None else mirror
        mirror = validate_mirror(kept, live)
        info.traffic, info.mirror = weights, mirror
        if _route(info, weights, mirror) is None:
            raise UsageError(f"endpoint {name}: the weighted slots have no running deployment")
        router(ws).apply(_routes(ws, info), drain=drain)
        now = utcnow()
        with ws.store.session() as s:
            row = s.get(EndpointRow, name)
            assert row is not None  # get_endpoint found it above, and endpoints are removed under this lock
            row.traffic, row.mirror, row.updated_at = weights, mirror, now
            record = {
                "weights": weights,
                "mirror": mirror,
                "deployments": {slot: info.slots[slot].deployment_id for slot in live},
                "reason": reason,
            }
            s.add(
                AliasEvent(
                    model_name=history_key(name),
                    alias=HISTORY_ALIAS,
                    actor=actor(),
                    reason=json.dumps(record),
                    created_at=now,
                )
            )
        return info


def route_all_to(ws: Workspace, name: str, slot: str, host: str, reason: str) -> EndpointInfo | None:
    """After a replace: 100 % to `slot`. Without nginx the endpoint has no router and None is
    returned (each deployment keeps its own URL); every other router error is raised."""
    try:
        require_nginx()
    except ConfigError:
        return None
    ensure_endpoint(ws, name, host)
    return set_traffic(ws, name, {slot: 100}, {}, reason=reason, drain=True)


def remove_endpoint(ws: Workspace, name: str) -> None:
    """Forget the endpoint's record and take it off the router (nginx stops with the last one)."""
    with ws.lock("router"):
        with ws.store.session() as s:
            s.execute(delete(EndpointRow).where(EndpointRow.name == name))
        try:
            router(ws).apply(_routes(ws))
        except ConfigError:
            if router(ws).master_pid() is not None:
                raise
