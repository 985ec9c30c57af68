"""After a step runs: did it leave a known secret value behind?

A step gets its secrets in its environment; a script that logs one as an MLflow param or tag,
writes it into an artifact or into its outputs folder has published it to everyone who can read
the workspace. After every step that ran (not a cache hit) the runner looks, with the values this
process knows (secrets/known.py: the step's secrets, the workspace's credentials, the credential
variables), in:

- the MLflow run named by the step's outputs (`run_id`) and its child runs (sweep trials): param
  and tag keys and values, and every artifact file;
- the step's outputs folder in the workspace (`outputs/<pipeline run>/<step>/`).

What it finds is reported by place and by the secret's *source* (`secrets.DB_PASSWORD`), never the
value. `secret_scan: warn` (the default) makes it the step's message and a warning;
`secret_scan: fail` fails the step, so nothing after it (registration, deployment) uses the run.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from shipyard.errors import StepFailed
from shipyard.secrets import known
from shipyard.secrets.redact import Redactor
from shipyard.secrets.scan import scan_for_values

log = logging.getLogger(__name__)


def scan_step(ctx: Any, step: str, outputs: dict[str, Any]) -> str | None:
    """None when the step left no known value behind; else the warning (or StepFailed)."""
    values = known.values()
    if not values or ctx.config.secret_scan == "off":
        return None
    found: list[str] = []
    run_id = outputs.get("run_id") if isinstance(outputs, dict) else None
    if run_id:
        found += _scan_run(ctx.ws, run_id, values)
    folder = ctx.ws.root / "outputs" / ctx.pipeline_run_id / step
    if folder.is_dir():
        found += _scan_folder(folder, values, f"file {folder.relative_to(ctx.ws.root)}/")
    if not found:
        return None
    shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
    message = (
        f"step {step} left a secret value behind: {shown}. Delete what holds it (e.g. "
        f"`mlflow runs delete --run-id ID`) and stop the script from logging it"
    )
    if ctx.config.secret_scan == "fail":
        raise StepFailed(message + " (secret_scan: fail)")
    log.warning(message)
    return "warning: " + message


def _scan_run(ws: Any, run_id: str, values: dict[str, str]) -> list[str]:
    client = ws.mlflow
    run = client.get_run(run_id)
    runs = [run] + list(
        client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    )
    redactors = {source: Redactor({source: value}) for source, value in values.items()}
    found: list[str] = []
    for each in runs:
        where = f"MLflow run {each.info.run_id[:8]}"
        for kind, items in (("param", each.data.params), ("tag", each.data.tags)):
            for key, value in sorted(items.items()):
                hits = [s for s, red in redactors.items() if red.contains(key) or red.contains(str(value))]
                if hits:
                    found.append(f"{where} {kind} {key!r} ({', '.join(hits)})")
        found += _scan_artifacts(each.info.artifact_uri, values, f"{where} artifact ")
        models = client.search_logged_models(
            experiment_ids=[each.info.experiment_id], filter_string=f"source_run_id = '{each.info.run_id}'"
        )
        for model in models:  # MLflow 3 logged models keep their files apart from the run's
            found += _scan_artifacts(model.artifact_location, values, f"{where} model {model.name!r} file ")
    return found


def _scan_artifacts(uri: str | None, values: dict[str, str], prefix: str) -> list[str]:
    import mlflow.artifacts

    parsed = urlparse(uri or "")
    if parsed.scheme in ("file", ""):
        folder = Path(unquote(parsed.path))
        return _scan_folder(folder, values, prefix) if folder.is_dir() else []
    try:  # a remote store: look at a downloaded copy
        with tempfile.TemporaryDirectory(prefix="shipyard-scan-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            return _scan_folder(Path(local), values, prefix)
    except Exception as exc:  # a scan that cannot read the store must not fail the step
        log.warning("could not scan the artifacts of %s for secrets: %s", prefix.strip(), type(exc).__name__)
        return []


def _scan_folder(folder: Path, values: dict[str, str], prefix: str) -> list[str]:
    found: list[str] = []
    for source, value in sorted(values.items()):
        for path in scan_for_values(folder, [value]):
            found.append(f"{prefix}{path.relative_to(folder)} ({source})")
    return sorted(found)
