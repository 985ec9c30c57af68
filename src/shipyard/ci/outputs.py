"""What CI stages read from a pipeline run's hand-off files and from an environment.

`shipyard run --outputs DIR` writes run.json always and model.json when the run got as far as
registration (also when the version already existed, `created: false`); a release is due only
for a *new* version. These helpers back `shipyard ci version|summary|smoke`, so that every CI
system (and the local runner) asks the same question the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.errors import DeploymentError, NotFoundError, UsageError


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON ({exc}): was it written by `shipyard run --outputs`?") from None
    return data if isinstance(data, dict) else None


def registered_version(folder: Path) -> str | None:
    """The version this run registered, or None (rejected, failed, or the version existed)."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; run `shipyard run --outputs {folder}` first")
    model = _read(folder / "model.json")
    if model is None or not model.get("created"):
        return None
    return str(model["version"])


def summary_markdown(folder: Path) -> str:
    """The run's gate verdict and registration as Markdown, for a CI job summary."""
    run = _read(folder / "run.json")
    if run is None:
        return f"## Shipyard pipeline\n\nNo run.json in `{folder}`: the pipeline did not get to write it.\n"
    lines = [f"## Shipyard pipeline: {run.get('status')}", ""]
    gate = run.get("gate")
    if gate:
        champion = (
            f"v{gate['champion_version']}: {_num(gate.get('champion_value'))}"
            if gate.get("champion_version")
            else "none"
        )
        lines += [
            "| gate | metric | candidate | production |",
            "| --- | --- | --- | --- |",
            f"| **{gate.get('verdict')}** | {gate.get('metric')} ({gate.get('direction')} is better) "
            f"| {_num(gate.get('candidate_value'))} | {champion} |",
            "",
            f"{gate.get('reason')}",
            "",
        ]
    version = registered_version(folder) if folder.is_dir() else None
    model = _read(folder / "model.json")
    if version is not None and model is not None:
        aliases = ", ".join(model.get("aliases") or []) or "-"
        lines.append(f"Registered **{model.get('name')} v{version}** (aliases: {aliases}).")
    elif model is not None:
        lines.append(
            f"{model.get('name')} v{model.get('version')} was already registered: nothing to release."
        )
    else:
        lines.append("No new model version: nothing to release.")
    if run.get("error"):
        lines += ["", f"Error: {run['error']}"]
    return "\n".join(lines) + "\n"


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.6g}" if isinstance(v, int | float) else str(v)


def smoke(ws: Any, config: Any, env: str, version: str | None) -> dict[str, Any]:
    """Send the sample request again to `env`'s stable URL (its router's: what clients call, not
    one deployment's own port), after checking it serves `version`.

    Unlike the deployment's own smoke test this stops nothing when it fails: the version is live
    already, and the release's rollback job decides what serves next."""
    from shipyard.config.overlay import env_deployment
    from shipyard.deploy.endpoints import auth_enabled, get_deployment
    from shipyard.deploy.keys import temporary_key
    from shipyard.deploy.smoke import smoke_test
    from shipyard.release.environments import serving

    state = serving(ws, config, env)
    if state.model_version is None or state.deployment_id is None or state.url is None:
        raise NotFoundError(f"{env} serves no model: deploy one with `shipyard env deploy {env}`")
    if version and str(state.model_version) != str(version):
        raise DeploymentError(
            f"{env} serves {state.model_name} v{state.model_version}, not v{version}: "
            "its deployment or promotion did not go through"
        )
    d = env_deployment(config, env)
    if not d.input_sample:
        raise UsageError(
            "deployment.input_sample is not set in shipyard.yaml: the smoke test needs a sample request"
        )
    payload = json.loads(config.path(d.input_sample).read_text())
    dep = get_deployment(ws, state.deployment_id)
    if auth_enabled(ws, dep):
        with temporary_key(ws, dep.endpoint) as key:
            result = smoke_test(state.url, payload, d.smoke_test.timeout_s, key=key)
    else:
        result = smoke_test(state.url, payload, d.smoke_test.timeout_s)
    if not result.passed:
        raise DeploymentError(
            f"smoke test of {env} ({state.url}) failed: {result.detail}; "
            f"`shipyard rollback {env}` returns it to the version it served before"
        )
    return {
        "env": env,
        "model_name": state.model_name,
        "model_version": state.model_version,
        "url": state.url,
        "smoke_test": "passed",
        "latency_ms": result.latency_ms,
    }
