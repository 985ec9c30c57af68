"""Blue/green rollout with traffic steps and automatic roll-back; `rollback` to the previous version.

Blue is the endpoint's active deployment. Green starts beside it in the other slot, must become
healthy and pass the smoke test (directly, before any user request reaches it), then receives a
growing share of the endpoint's traffic (e.g. 10 → 50 → 100 %). During each step's observation
window the router's access log is read for green's answers: a share of 5xx (or a connection
error, which nginx logs as 502) above the limit, or green's process dying, sends all traffic back
to blue and removes green, with the reason in the result. Only after the last step is blue
stopped, and only once no router worker can still send to it, so no request is lost.

The access log is used rather than green's /metrics because it also sees what never reached
green (refused connections, timeouts) and is the same view a client has.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.config.models import DeploymentConfig
from shipyard.deploy import runtime
from shipyard.deploy.endpoints import (
    DeploymentInfo,
    _update,
    activate,
    active_deployment,
    check_deployment,
    get_deployment,
    next_slot,
    replaced_deployments,
    spawn_recorder,
    start_deployment,
)
from shipyard.deploy.targets import target_class
from shipyard.deploy.traffic import ensure_endpoint, get_endpoint, router, set_traffic, traffic_history
from shipyard.errors import DeploymentError, NotFoundError, UsageError
from shipyard.packaging.bundle import Bundle, get_bundle
from shipyard.router.nginx import require_nginx, upstream_name
from shipyard.workspace import Workspace

DEFAULT_STEPS = (10, 50, 100)


@dataclass(frozen=True)
class TrafficSteps:
    """A blue/green rollout's plan: green's traffic share per step, the seconds each step is
    watched, and the highest 5xx share allowed."""

    steps: list[int] | tuple[int, ...] = DEFAULT_STEPS
    window_s: float = 5.0
    max_error_rate: float = 0.01


@dataclass
class RolloutResult:
    endpoint: str
    succeeded: bool
    url: str | None
    green: str | None  # deployment ids
    blue: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    new_keys: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "new_keys"}


def check_steps(steps: list[int] | tuple[int, ...]) -> list[int]:
    """Traffic shares for green: rising whole percents ending at 100."""
    steps = list(steps)
    if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise UsageError(
            f"rollout steps {steps}: use rising percents from 1 to 100 ending at 100, e.g. 10,50,100"
        )
    return steps


def error_share(access_log: Path, offset: int, upstream: str) -> tuple[int, int]:
    """(requests, 5xx answers) the router logged for `upstream` after byte `offset`."""
    total = errors = 0
    try:
        with open(access_log, "rb") as handle:
            handle.seek(offset)
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("upstream") != upstream:
                    continue
                total += 1
                errors += int(record.get("status", 0)) >= 500
    except OSError:
        pass
    return total, errors


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _observe(ws: Workspace, endpoint: str, slot: str, green: Any, window_s: float, limit: float) -> dict:
    """Watch green for `window_s`; the step's figures and, on failure, why."""
    log = router(ws).access_log
    offset = _log_size(log)
    deadline = time.monotonic() + window_s
    problem = None
    while time.monotonic() < deadline:
        if not runtime.alive(ws, green):
            problem = "green's server exited"
            break
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    total, errors = error_share(log, offset, upstream_name(endpoint, slot))
    rate = errors / total if total else 0.0
    if problem is None and rate > limit:
        problem = f"green answered {errors} of {total} requests with 5xx ({rate:.1%} > limit {limit:.1%})"
    return {"requests": total, "errors": errors, "error_rate": round(rate, 4), "problem": problem}


def _abort(ws: Workspace, result: RolloutResult, blue_slot: str, green_id: str, reason: str) -> RolloutResult:
    """All traffic back to blue, then green stopped and marked failed."""
    set_traffic(ws, result.endpoint, {blue_slot: 100}, {}, reason=f"rollout aborted: {reason}", drain=True)
    runtime.stop(ws, get_deployment(ws, green_id))
    _update(ws, green_id, state="failed", message=f"rollout aborted: {reason}")
    result.reason = f"{reason}; all traffic is back on blue ({result.blue}) and green was removed"
    return result


def blue_green(
    ws: Workspace,
    bundle: Bundle,
    config: DeploymentConfig,
    *,
    slot: str | None = None,
    steps: list[int] | tuple[int, ...] = DEFAULT_STEPS,
    window_s: float = 5.0,
    max_error_rate: float = 0.01,
) -> RolloutResult:
    """Roll `bundle` out beside the active deployment; never raises for a failed rollout (the
    result says why), only for misuse (UsageError, missing nginx)."""
    steps = check_steps(steps)
    require_nginx()
    name = config.name
    blue = active_deployment(ws, name)
    result = RolloutResult(name, False, None, None, blue.id if blue else None)
    if blue is None:  # nothing to shift from: a plain replace
        green = start_deployment(ws, bundle, config, slot)
        check_deployment(ws, green.id, bundle.manifest.get("input_sample"), config.smoke_test.timeout_s)
        info = activate(ws, green.id, reason="blue-green: first deployment")
        result.succeeded, result.green, result.url = True, green.id, info.endpoint_url
        result.new_keys, result.reason = green.new_keys, "no active deployment: green took 100 % at once"
        return result
    blue_slot = blue.slot or "blue"
    green_slot = next_slot(ws, name, slot)
    if green_slot == blue_slot:
        raise UsageError(f"slot {green_slot!r} is blue's (the active deployment): give another --slot")
    endpoint = get_endpoint(ws, name) or ensure_endpoint(ws, name, config.host)
    if endpoint.traffic != {blue_slot: 100}:
        set_traffic(ws, name, {blue_slot: 100}, {}, reason="blue-green: blue takes all before green starts")
    current = get_endpoint(ws, name)
    assert current is not None  # ensured above
    result.url = current.url
    try:
        green = start_deployment(ws, bundle, config, green_slot)
    except DeploymentError as exc:
        result.reason = f"green did not become healthy: {exc}"
        return result
    result.green, result.new_keys = green.id, green.new_keys
    try:
        check_deployment(ws, green.id, bundle.manifest.get("input_sample"), config.smoke_test.timeout_s)
    except DeploymentError as exc:
        # check_deployment stopped green; blue never lost its traffic.
        result.reason = f"green failed its smoke test: {exc}; blue keeps 100 % and green was removed"
        return result
    for pct in steps:
        weights = {green_slot: 100} if pct == 100 else {blue_slot: 100 - pct, green_slot: pct}
        set_traffic(ws, name, weights, {}, reason=f"blue-green: green at {pct} %")
        seen = _observe(ws, name, green_slot, green, window_s, max_error_rate)
        result.steps.append({"green_percent": pct, **seen})
        if seen["problem"]:
            return _abort(ws, result, blue_slot, green.id, f"at {pct} %: {seen['problem']}")
    activate(ws, green.id, reason="blue-green: green took 100 %, blue stopped")
    result.succeeded, result.reason = True, f"green took 100 % in steps {steps}; blue stopped"
    return result


def _restart(ws: Workspace, dep_id: str, slot: str, health_timeout_s: float) -> None:
    """Start a stopped deployment again from its bundle (or image), with its own id and settings."""
    dep = get_deployment(ws, dep_id)
    bundle = get_bundle(ws, dep.bundle_id)
    config = restart_config(dep, health_timeout_s)
    if runtime.settings_path(ws, dep.endpoint, dep.id).is_file():
        files = runtime.server_files(ws, dep.endpoint, dep.id)
    else:  # started by another machine: its serving settings again, auth on unless they said off
        files, _ = runtime.write_server_files(ws, config, dep.id)
    log_path = Path(dep.log_path or f"{dep_id}.log")
    try:
        fields = runtime.launch(
            ws,
            dep.id,
            bundle,
            config,
            files,
            log_path,
            slot=slot,
            image_id=dep.image_id,
            on_spawn=spawn_recorder(ws, dep.id),
        )
    except DeploymentError as exc:
        _update(ws, dep_id, state="failed", message=f"rollback restart failed: {exc}")
        raise
    _update(ws, dep_id, **fields, slot=slot, state="healthy", message="restarted for rollback")


def restart_config(dep: DeploymentInfo, health_timeout_s: float) -> DeploymentConfig:
    """The settings `dep` started with (recorded since migration 0009), on a free port; an older
    record without them gets its target and host only (enough for the local target)."""
    if dep.config:
        return DeploymentConfig.model_validate(
            dep.config | {"name": dep.endpoint, "port": 0, "health_timeout_s": health_timeout_s}
        )
    host = dep.url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]") if dep.url else "127.0.0.1"
    return DeploymentConfig(
        name=dep.endpoint, target=dep.target, host=host, port=0, health_timeout_s=health_timeout_s
    )


def previous_deployment(ws: Workspace, endpoint: str, current_id: str | None) -> str:
    """The deployment that served the endpoint before the current one: from its router's traffic
    history, else (a target without a router here, such as a remote container) the deployment
    replaced last."""
    for change in traffic_history(ws, endpoint):
        weights = change.get("weights") or {}
        if not weights:
            continue
        primary = max(weights, key=lambda s: weights[s])
        dep_id = (change.get("deployments") or {}).get(primary)
        if dep_id and dep_id != current_id:
            return dep_id
    for dep in replaced_deployments(ws, endpoint):
        if dep.id != current_id:
            return dep.id
    raise NotFoundError(f"endpoint {endpoint!r} has no previous deployment to return to")


def rollback(ws: Workspace, endpoint: str, health_timeout_s: float = 60, smoke_timeout_s: float = 60) -> dict:
    """Return the endpoint to its previous deployment (restarted from its bundle if it is gone),
    smoke-test it, switch all traffic to it and stop the current one."""
    current = active_deployment(ws, endpoint)
    target_id = previous_deployment(ws, endpoint, current.id if current else None)
    target = get_deployment(ws, target_id)
    if target_class(target.target).on_this_machine:  # its traffic goes through the router here
        require_nginx()
    slot = target.slot or "blue"
    if current is not None and current.slot == slot:
        slot = "green" if slot == "blue" else "blue"
    if not runtime.alive(ws, target) or target.state not in ("healthy", "active"):
        _restart(ws, target_id, slot, health_timeout_s)
    payload = get_bundle(ws, target.bundle_id).manifest.get("input_sample")
    check_deployment(ws, target_id, payload, smoke_timeout_s)
    info = activate(ws, target_id, reason=f"rollback from {current.id if current else 'nothing'}")
    return {
        "endpoint": endpoint,
        "url": info.endpoint_url,
        "deployment_id": target_id,
        "model": f"{info.model_name}:{info.model_version}",
        "slot": info.slot,
        "from_deployment_id": current.id if current else None,
    }
