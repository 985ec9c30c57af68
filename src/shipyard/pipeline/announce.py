"""After a pipeline run: tell the webhooks (gate verdict, failure) and, with environments, put the
deployment the run made into the first environment's history. Never fails the run."""

from __future__ import annotations

import logging
from typing import Any

from shipyard.pipeline.outputs import RegisteredModel, SmokeTestedEndpoint, StepOutput

log = logging.getLogger("shipyard.pipeline")


def announce(ws: Any, config: Any, result: Any, outputs: dict[str, StepOutput]) -> None:
    from shipyard.release.notify import notify

    try:
        gate = result.gate
        if gate is not None:
            notify(config, "gate", f"gate {gate.verdict}: {gate.reason}", gate.to_dict())
        if result.status == "failed":
            notify(
                config,
                "failure",
                f"pipeline run {result.pipeline_run_id[:8]} failed: {result.error}",
                {"pipeline_run_id": result.pipeline_run_id, "error": result.error},
            )
        smoke = outputs.get("smoke_test")
        if isinstance(smoke, SmokeTestedEndpoint) and config.environments and result.status == "succeeded":
            register = outputs.get("register")
            _record_root_deploy(
                ws, config, result, smoke, register if isinstance(register, RegisteredModel) else None
            )
    except Exception as exc:  # the run's result stands whatever happens here
        log.warning("after-run notifications failed: %s", exc)


def _record_root_deploy(
    ws: Any, config: Any, result: Any, smoke: SmokeTestedEndpoint, register: RegisteredModel | None
) -> None:
    from shipyard.config.overlay import root_env
    from shipyard.release.environments import env_history, record_event

    env = root_env(config)
    dep_id = smoke.deployment_id
    if env is None or any(e["deployment_id"] == dep_id for e in env_history(ws, env)):
        return  # a cached deploy step: already in the history
    version = str(register.version) if register is not None and register.version else None
    why = f"shipyard run (pipeline {result.pipeline_run_id[:8]})"
    record_event(
        ws,
        env,
        "deploy",
        model_name=register.model_name if register is not None else None,
        version=version,
        deployment_id=dep_id,
        reason=why,
    )
