"""After a pipeline run: tell the webhooks (gate verdict, failure) and, with environments, put the
deployment the run made into the first environment's history. Never fails the run."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("shipyard.pipeline")


def announce(ws: Any, config: Any, result: Any, outputs: dict[str, dict[str, Any]]) -> None:
    from shipyard.release.notify import notify

    try:
        gate = result.gate
        if gate and "verdict" in gate:
            notify(config, "gate", f"gate {gate['verdict']}: {gate.get('reason', '')}", gate)
        if result.status == "failed":
            notify(config, "failure", f"pipeline run {result.pipeline_run_id[:8]} failed: {result.error}",
                   {"pipeline_run_id": result.pipeline_run_id, "error": result.error})  # fmt: skip
        smoke = outputs.get("smoke_test")
        if smoke and config.environments and result.status == "succeeded":
            _record_root_deploy(ws, config, result, outputs)
    except Exception as exc:  # the run's result stands whatever happens here
        log.warning("after-run notifications failed: %s", exc)


def _record_root_deploy(ws: Any, config: Any, result: Any, outputs: dict[str, dict[str, Any]]) -> None:
    from shipyard.config.overlay import root_env
    from shipyard.release.environments import env_history, record_event

    env = root_env(config)
    dep_id = outputs["smoke_test"]["deployment_id"]
    if env is None or any(e["deployment_id"] == dep_id for e in env_history(ws, env)):
        return  # a cached deploy step: already in the history
    register = outputs.get("register", {})
    version = str(register["version"]) if register.get("version") else None
    why = f"shipyard run (pipeline {result.pipeline_run_id[:8]})"
    record_event(ws, env, "deploy", model_name=register.get("model_name"), version=version,
                 deployment_id=dep_id, reason=why)  # fmt: skip
